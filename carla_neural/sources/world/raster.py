"""Rasterise the world: an analytic ground plane plus painter-ordered box faces into an id buffer.

Every surface is planar, so 1/z is affine in pixel coordinates on each face: the id buffer plus three
coefficients per face give exact per-pixel depth, world position and (with the previous camera and
the actors' previous poses) exact optical flow, without a per-pixel z-buffer loop in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from carla_neural.sources.world import tags as T
from carla_neural.sources.world.camera import Camera
from carla_neural.sources.world.layout import GroundMap

SKY_DEPTH_M = 1000.0
_SHIFT = 4  # sub-pixel bits for cv2.fillConvexPoly

# Corner k of a box has local signs (x, y, z) = (bit 2, bit 1, bit 0): x, y in {-1, +1}, z in {0, 1}.
_CORNER_SIGNS = np.array([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], np.float64)
_CORNER_SIGNS[:, :2] = _CORNER_SIGNS[:, :2] * 2 - 1
# Faces as convex corner cycles: +x, -x, +y, -y, top.
FACE_CORNERS = np.array([[4, 6, 7, 5], [0, 1, 3, 2], [2, 3, 7, 6], [0, 4, 5, 1], [1, 5, 7, 3]])


@dataclass
class DrawBoxes:
    """Boxes to draw this frame (static and moving together)."""

    center: np.ndarray  # (N, 3) bottom-centre
    size: np.ndarray  # (N, 3)
    yaw: np.ndarray  # (N,)
    tag: np.ndarray  # (N,) uint8
    instance: np.ndarray  # (N,) int32
    material: np.ndarray  # (N,) uint8
    colour: np.ndarray  # (N, 3) float32
    param: np.ndarray  # (N, 2) float32
    motion: np.ndarray  # (N,) int32, 0 = static, k = row k of the motion table
    group: np.ndarray  # (N,) int64: boxes of one solid object share a group (drawn together)


def box_corners(center: np.ndarray, size: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(N, 3) bottom-centres, sizes, (N,) yaws -> (N, 8, 3) world corners."""
    local = _CORNER_SIGNS[None] * np.stack([size[:, 0] / 2, size[:, 1] / 2, size[:, 2]], axis=1)[:, None, :]
    cos, sin = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    world = np.empty_like(local)
    world[..., 0] = center[:, None, 0] + local[..., 0] * cos - local[..., 1] * sin
    world[..., 1] = center[:, None, 1] + local[..., 0] * sin + local[..., 1] * cos
    world[..., 2] = center[:, None, 2] + local[..., 2]
    return world


def _face_normals(yaw: np.ndarray) -> np.ndarray:
    """(N,) yaws -> (N, 5, 3) outward unit normals of the faces +x, -x, +y, -y, top."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    zeros, ones = np.zeros_like(yaw), np.ones_like(yaw)
    along = np.stack([cos, sin, zeros], axis=1)
    across = np.stack([-sin, cos, zeros], axis=1)
    up = np.stack([zeros, zeros, ones], axis=1)
    return np.stack([along, -along, across, -across, up], axis=1)


def _clip_near(polygon: np.ndarray, near: float) -> np.ndarray:
    """Clip a convex polygon (K, 3) in camera coordinates to z >= near (Sutherland-Hodgman)."""
    out = []
    count = len(polygon)
    for index in range(count):
        current, following = polygon[index], polygon[(index + 1) % count]
        current_in, following_in = current[2] >= near, following[2] >= near
        if current_in:
            out.append(current)
        if current_in != following_in:
            t = (near - current[2]) / (following[2] - current[2])
            out.append(current + t * (following - current))
    return np.array(out)


@dataclass
class FaceTable:
    """Per drawn face (row 0 = the ground plane): what the shader and flow need, indexed by the id buffer."""

    plane: np.ndarray  # (F, 3) float32: 1/z = a u + b v + c
    tag: np.ndarray  # (F,) uint8 (ground row: 0, filled from the ground map)
    instance: np.ndarray  # (F,) int32
    material: np.ndarray  # (F,) uint8
    colour: np.ndarray  # (F, 3) float32
    param: np.ndarray  # (F, 2) float32
    normal: np.ndarray  # (F, 3) float32 world normal
    texture: np.ndarray  # (F, 8) float32: s = (X, Y, Z, 1) . [:4], t = (X, Y, Z, 1) . [4:], metres
    base: np.ndarray  # (F, 2) float32: box bottom z and height
    motion: np.ndarray  # (F,) int32


@dataclass
class Raster:
    """One camera's rasterised view: the id buffer and per-pixel geometry."""

    face_ids: np.ndarray  # (H, W) int32, 0 = ground or sky
    faces: FaceTable
    depth_m: np.ndarray  # (H, W) float32 planar depth, SKY_DEPTH_M for sky
    sky: np.ndarray  # (H, W) bool
    world: tuple[np.ndarray, np.ndarray, np.ndarray]  # X, Y, Z (H, W) float32
    ground_material: np.ndarray  # (H, W) uint8 (meaningful where face_ids == 0 and not sky)


def _pixel_grid(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    return (np.arange(camera.width, dtype=np.float32)[None, :], np.arange(camera.height, dtype=np.float32)[:, None])


def rasterize(camera: Camera, boxes: DrawBoxes, corners: np.ndarray, ground: GroundMap,
              view_distance: float) -> Raster:
    """Draw the ground and `boxes` (with precomputed (N, 8, 3) `corners`) as seen by `camera`."""
    width, height = camera.width, camera.height
    focal, cx, cy, near = camera.focal, camera.cx, camera.cy, camera.near

    # --- select boxes: near enough, in front, inside the frustum
    offset = boxes.center[:, :2] - camera.position[:2]
    reach = view_distance + 0.5 * np.hypot(boxes.size[:, 0], boxes.size[:, 1])
    candidates = np.flatnonzero(np.einsum("ij,ij->i", offset, offset) < reach * reach)
    cam = camera.to_camera(corners[candidates])  # (M, 8, 3)
    z = cam[..., 2]
    margin_x = (width / 2 + 2) / focal
    margin_y = (height / 2 + 2) / focal
    x_rel, y_rel = cam[..., 0] - (cx - width / 2) / focal * z, cam[..., 1]
    outside = (
        (z < near).all(axis=1)
        | (x_rel > margin_x * z).all(axis=1)
        | (x_rel < -margin_x * z).all(axis=1)
        | (y_rel > margin_y * z).all(axis=1)
        | (y_rel < -margin_y * z).all(axis=1)
    )
    keep = ~outside
    candidates, cam = candidates[keep], cam[keep]
    # Boxes entirely in front and under a pixel on screen are dropped: cheaper, and CARLA's
    # rasteriser would not cover a pixel centre with them either.
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        screen = cam[..., :2] / np.maximum(z, near)[..., None] * focal
    extent = screen.max(axis=1) - screen.min(axis=1)
    tiny = (z >= near).all(axis=1) & ((extent[:, 0] < 0.7) | (extent[:, 1] < 0.7))
    candidates, cam = candidates[~tiny], cam[~tiny]

    # --- visible faces (back-face culling) and painter's order (farthest box first)
    normals_world = _face_normals(boxes.yaw[candidates])  # (M, 5, 3)
    normals_cam = normals_world @ camera.rotation
    face_points = cam[:, FACE_CORNERS[:, 0], :]  # (M, 5, 3) a corner on each face
    facing = np.einsum("mfk,mfk->mf", normals_cam, face_points)  # < 0 when the face looks at the camera
    visible = facing < -1e-6

    centers, sizes, yaws = boxes.center[candidates], boxes.size[candidates], boxes.yaw[candidates]
    rel = camera.position - centers
    cos, sin = np.cos(yaws), np.sin(yaws)
    local = np.stack([rel[:, 0] * cos + rel[:, 1] * sin, -rel[:, 0] * sin + rel[:, 1] * cos, rel[:, 2]], axis=1)
    lo = np.stack([-sizes[:, 0] / 2, -sizes[:, 1] / 2, np.zeros(len(sizes))], axis=1)
    hi = np.stack([sizes[:, 0] / 2, sizes[:, 1] / 2, sizes[:, 2]], axis=1)
    distance = np.linalg.norm(local - np.clip(local, lo, hi), axis=1)
    # Painter's order: objects far to near (an object's distance is that of its nearest box), and
    # within a multi-box object its boxes bottom-up (a cabin drawn after the body it sits on),
    # then far to near (a truck's cargo box and cab side by side).
    groups = boxes.group[candidates]
    _, group_index = np.unique(groups, return_inverse=True)
    group_distance = np.full(group_index.max() + 1 if len(group_index) else 0, np.inf)
    np.minimum.at(group_distance, group_index, distance)
    order = np.lexsort((-distance, centers[:, 2], -group_distance[group_index]))

    # --- face table rows 1..F in drawing order
    box_of_face, face_of_box = np.nonzero(visible[order])
    box_of_face = order[box_of_face]
    count = len(box_of_face) + 1
    n_cam = normals_cam[box_of_face, face_of_box]
    p_cam = face_points[box_of_face, face_of_box]
    plane_d = np.einsum("fk,fk->f", n_cam, p_cam)
    plane = np.empty((count, 3), np.float64)
    # The ground plane z = 0 in camera coordinates: normal R^T (0, 0, 1), offset n . (0 - C) = -C_z.
    ground_n = camera.rotation[2]
    ground_d = -float(camera.position[2])
    all_n = np.vstack([ground_n[None], n_cam])
    all_d = np.concatenate([[ground_d], plane_d])
    plane[:, 0] = all_n[:, 0] / (focal * all_d)
    plane[:, 1] = all_n[:, 1] / (focal * all_d)
    plane[:, 2] = (all_n[:, 2] - all_n[:, 0] * cx / focal - all_n[:, 1] * cy / focal) / all_d

    source = candidates[box_of_face]
    nw = normals_world[box_of_face, face_of_box]
    # Texture coordinates fixed to each box (so they travel with moving actors):
    # s = (X, Y, Z, 1) . texture[:4], t = (X, Y, Z, 1) . texture[4:].
    # Side faces: s runs horizontally along the face, t is height. Tops: the box's own x and y.
    yaw_faces = boxes.yaw[source]
    cos_f, sin_f = np.cos(yaw_faces), np.sin(yaw_faces)
    centre_x, centre_y = boxes.center[source, 0], boxes.center[source, 1]
    texture = np.zeros((count, 8), np.float32)
    texture[0] = (1, 0, 0, 0, 0, 1, 0, 0)
    side_s = np.stack([-nw[:, 1], nw[:, 0]], axis=1)
    top = face_of_box == 4
    s_axis = np.where(top[:, None], np.stack([cos_f, sin_f], axis=1), side_s)
    texture[1:, 0:2] = s_axis
    texture[1:, 3] = -(centre_x * s_axis[:, 0] + centre_y * s_axis[:, 1])
    texture[1:, 4] = np.where(top, -sin_f, 0.0)
    texture[1:, 5] = np.where(top, cos_f, 0.0)
    texture[1:, 6] = np.where(top, 0.0, 1.0)
    texture[1:, 7] = np.where(top, centre_x * sin_f - centre_y * cos_f, 0.0)

    faces = FaceTable(
        plane=plane.astype(np.float32),
        tag=np.concatenate([[0], boxes.tag[source]]).astype(np.uint8),
        instance=np.concatenate([[0], boxes.instance[source]]).astype(np.int32),
        material=np.concatenate([[0], boxes.material[source]]).astype(np.uint8),
        colour=np.vstack([np.zeros((1, 3)), boxes.colour[source]]).astype(np.float32),
        param=np.vstack([np.zeros((1, 2)), boxes.param[source]]).astype(np.float32),
        normal=np.vstack([[0.0, 0.0, 1.0], nw]).astype(np.float32),
        texture=texture,
        base=np.vstack([[0.0, 0.0], np.stack([boxes.center[source, 2], boxes.size[source, 2]], axis=1)]).astype(
            np.float32
        ),
        motion=np.concatenate([[0], boxes.motion[source]]).astype(np.int32),
    )

    # --- fill the id buffer, far to near
    face_ids = np.zeros((height, width), np.int32)
    scale = float(1 << _SHIFT)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = cam[..., :2] * (focal / cam[..., 2:3]) + np.array([cx, cy])
    in_front = (cam[..., 2] >= near).all(axis=1)
    # z >= near after clipping and boxes lie within the view distance, so fixed-point pixel
    # coordinates stay far inside int32.
    uv_fixed = np.round(np.where(np.isfinite(uv), uv, 0) * scale).astype(np.int32)
    face_points_px = uv_fixed[box_of_face[:, None], FACE_CORNERS[face_of_box]]  # (F - 1, 4, 2)
    unclipped = in_front[box_of_face].tolist()
    fill = cv2.fillConvexPoly
    for face_index in range(1, count):
        if unclipped[face_index - 1]:
            fill(face_ids, face_points_px[face_index - 1], face_index, cv2.LINE_8, _SHIFT)
            continue
        box, side = box_of_face[face_index - 1], face_of_box[face_index - 1]
        polygon = _clip_near(cam[box, FACE_CORNERS[side]], near)
        if len(polygon) < 3:
            continue
        points = np.round((polygon[:, :2] * (focal / polygon[:, 2:3]) + (cx, cy)) * scale).astype(np.int32)
        fill(face_ids, points, face_index, cv2.LINE_8, _SHIFT)

    # --- per-pixel depth from the plane of each pixel's face
    u, v = _pixel_grid(camera)
    # np.take on a (3, F) table is several times faster than fancy-indexing (F, 3) rows.
    coefficients = np.take(np.ascontiguousarray(faces.plane.T), face_ids, axis=1)  # (3, H, W)
    inverse_depth = coefficients[0] * u
    inverse_depth += coefficients[1] * v
    inverse_depth += coefficients[2]
    sky = inverse_depth <= np.float32(1.0 / SKY_DEPTH_M)
    sky &= face_ids == 0
    depth = np.empty_like(inverse_depth)
    np.divide(np.float32(1.0), inverse_depth, out=depth, where=~sky)
    depth[sky] = SKY_DEPTH_M

    # --- world position: P = C + z * (right * xn + down * yn + forward)
    rot = camera.rotation.astype(np.float32)
    xn = (u - np.float32(cx)) / np.float32(focal)
    yn = (v - np.float32(cy)) / np.float32(focal)
    world = []
    for axis_index in range(3):
        direction = rot[axis_index, 0] * xn + (rot[axis_index, 1] * yn + rot[axis_index, 2])
        world.append(np.float32(camera.position[axis_index]) + depth * direction)

    inv_res = np.float32(1.0 / ground.resolution)
    map_x = (world[0] - np.float32(ground.origin[0])) * inv_res
    map_y = (world[1] - np.float32(ground.origin[1])) * inv_res
    np.clip(map_x, -1.0, ground.materials.shape[1] + 1.0, out=map_x)
    np.clip(map_y, -1.0, ground.materials.shape[0] + 1.0, out=map_y)
    ground_material = cv2.remap(ground.materials, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=int(T.GROUND_GRASS))
    return Raster(face_ids, faces, depth, sky, (world[0], world[1], world[2]), ground_material)


def semantic_and_instance(raster: Raster) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) uint8 CARLA tags and (H, W) int32 instance ids of a raster."""
    tags = raster.faces.tag[raster.face_ids]
    ground = raster.face_ids == 0
    tags[ground] = T.GROUND_MATERIAL_TAGS[raster.ground_material[ground]]
    tags[raster.sky] = T.SKY
    return tags, raster.faces.instance[raster.face_ids]


def backward_flow(raster: Raster, previous: Camera, motion: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32 px: where each pixel's surface was in the previous frame, minus where it is now.

    `motion` is (K, 6): per motion slot (cos d, sin d, x_now, y_now, x_prev, y_prev), with d = yaw_prev - yaw_now
    (the rotation that takes the actor's pose now back to its pose one tick ago); slot 0 is the identity (static world).
    """
    px, py, pz = raster.world
    slots = raster.faces.motion[raster.face_ids]
    moving = np.flatnonzero(slots)
    if len(moving):
        px, py = px.copy(), py.copy()
        flat_x, flat_y = px.reshape(-1), py.reshape(-1)
        rows = motion[slots.reshape(-1)[moving]].astype(np.float32)
        rel_x = flat_x[moving] - rows[:, 2]
        rel_y = flat_y[moving] - rows[:, 3]
        flat_x[moving] = rows[:, 4] + rows[:, 0] * rel_x - rows[:, 1] * rel_y
        flat_y[moving] = rows[:, 5] + rows[:, 1] * rel_x + rows[:, 0] * rel_y
    rot = previous.rotation.astype(np.float32)
    dx = px - np.float32(previous.position[0])
    dy = py - np.float32(previous.position[1])
    dz = pz - np.float32(previous.position[2])
    cam_x = rot[0, 0] * dx + rot[1, 0] * dy + rot[2, 0] * dz
    cam_y = rot[0, 1] * dx + rot[1, 1] * dy + rot[2, 1] * dz
    cam_z = rot[0, 2] * dx + rot[1, 2] * dy + rot[2, 2] * dz
    valid = cam_z > np.float32(previous.near)
    np.maximum(cam_z, np.float32(previous.near), out=cam_z)
    scale = np.float32(previous.focal) / cam_z
    flow = np.empty(cam_z.shape + (2,), np.float32)
    u, v = _pixel_grid(previous)
    flow[..., 0] = cam_x * scale + np.float32(previous.cx) - u
    flow[..., 1] = cam_y * scale + np.float32(previous.cy) - v
    flow[~valid] = 0.0
    return flow
