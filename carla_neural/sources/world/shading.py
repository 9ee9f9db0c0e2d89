"""Shade a raster into the world's RGB "photo": materials, textures, sun and sky light, fog, rain, night."""

from __future__ import annotations

import cv2
import numpy as np

from carla_neural.sources.world import tags as T
from carla_neural.sources.world.camera import Camera
from carla_neural.sources.world.raster import Raster
from carla_neural.sources.world.weather import Weather

_TILE = 256
_TILE_MASK = _TILE - 1


def make_noise_tile(seed: int) -> np.ndarray:
    """(256, 256) float32 tileable value noise around 1.0 (several octaves), for surface texture."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    tile = np.zeros((_TILE, _TILE), np.float32)
    for cells, weight in ((8, 0.5), (32, 0.3), (128, 0.2)):
        coarse = rng.standard_normal((cells, cells)).astype(np.float32)
        # Wrap-around resize keeps the tile seamless.
        padded = np.pad(coarse, 1, mode="wrap")
        big = cv2.resize(padded, ((cells + 2) * _TILE // cells,) * 2, interpolation=cv2.INTER_CUBIC)
        step = _TILE // cells
        tile += weight * big[step:step + _TILE, step:step + _TILE]
    tile /= tile.std() + 1e-6
    return 1.0 + 0.12 * tile


def make_rain_layers(width: int, height: int, seed: int, count: int = 4) -> np.ndarray:
    """(count, H, W) float32 layers of rain streaks (0..1) cycled frame by frame."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11, width, height]))
    layers = np.zeros((count, height, width), np.float32)
    streaks = max(30, width * height // 900)
    for layer in layers:
        xs = rng.uniform(0, width, streaks)
        ys = rng.uniform(-0.2 * height, height, streaks)
        lengths = rng.uniform(0.04, 0.12, streaks) * height
        for x, y, length in zip(xs, ys, lengths):
            cv2.line(layer, (int(x), int(y)), (int(x - 0.15 * length), int(y + length)), float(rng.uniform(0.3, 1.0)),
                     1, cv2.LINE_AA)
    return layers


class Shader:
    """Turns rasters into RGB images under a weather; holds the textures it needs."""

    def __init__(self, seed: int, width: int, height: int) -> None:
        self.noise = make_noise_tile(seed)
        self.rain_layers = make_rain_layers(width, height, seed)

    def shade(self, raster: Raster, camera: Camera, weather: Weather, frame_index: int) -> np.ndarray:
        """(H, W, 4) uint8 BGRA (alpha 255) of a raster, as CARLA's colour camera sends it.

        Colours are held as planes (3, N): per-channel operations on contiguous rows are several
        times faster in numpy than on interleaved (N, 3) pixels.
        """
        faces = raster.faces
        height, width = raster.face_ids.shape
        face_ids = raster.face_ids.reshape(-1)
        ground_material = raster.ground_material.reshape(-1)
        X, Y, Z = (channel.reshape(-1) for channel in raster.world)
        depth = raster.depth_m.reshape(-1)
        sky = raster.sky.reshape(-1)
        count = len(faces.tag)

        # Lit colour per face and per ground material: albedo x (Lambert sun + sky light).
        sun_dir = weather.sun_direction.astype(np.float32)
        sun_colour = np.asarray(weather.sun_colour, np.float32)
        lambert = np.clip(faces.normal @ sun_dir, 0.0, None) * np.float32(weather.sun)
        ambient = np.where(np.abs(faces.normal[:, 2]) < 0.5, 0.8, 1.0).astype(np.float32) * weather.ambient
        face_light = lambert[:, None] * sun_colour + ambient[:, None]
        ground_light = max(float(sun_dir[2]), 0.0) * weather.sun * sun_colour + weather.ambient
        lit = np.vstack([faces.colour * face_light, T.GROUND_MATERIAL_RGB * ground_light]).astype(np.float32)
        rows = face_ids.copy()
        ground = face_ids == 0
        rows[ground] = ground_material[ground].astype(np.int32) + count
        rgb = np.take(np.ascontiguousarray(lit.T), rows, axis=1)  # (3, N)

        # Texture coordinates (metres on each surface, see FaceTable.texture).
        per_pixel = np.take(np.ascontiguousarray(faces.texture.T), face_ids, axis=1)  # (8, N)
        s = X * per_pixel[0]
        s += Y * per_pixel[1]
        s += Z * per_pixel[2]
        s += per_pixel[3]
        t = X * per_pixel[4]
        t += Y * per_pixel[5]
        t += Z * per_pixel[6]
        t += per_pixel[7]
        shade = self._noise_at(s, t, 6.0, depth, camera.focal)

        material = faces.material[face_ids]
        emissive_rows: list[np.ndarray] = []
        emissive_colours: list[np.ndarray] = []

        slab = np.flatnonzero(ground & (ground_material == T.GROUND_SIDEWALK))
        if len(slab):
            xs, ys = X[slab], Y[slab]
            joints = (np.abs(xs - np.round(xs)) < 0.05) | (np.abs(ys - np.round(ys)) < 0.05)
            # Fade the joints with distance, before they get thinner than a pixel and alias.
            fade = np.clip(1.0 - depth[slab[joints]] * np.float32(1.0 / 25.0), 0.0, 1.0)
            shade[slab[joints]] *= 1.0 - 0.3 * fade

        facade = np.flatnonzero(material == T.MAT_FACADE)
        if len(facade):
            ids = face_ids[facade]
            params, base = faces.param[ids], faces.base[ids]
            local_z = Z[facade] - base[:, 0]
            col = s[facade] / params[:, 0]
            row = local_z / params[:, 1]
            fx, fy = col - np.floor(col), row - np.floor(row)
            window = (fx > 0.22) & (fx < 0.78) & (fy > 0.3) & (fy < 0.82) & (local_z > 0.9)
            window &= local_z < base[:, 1] - 0.6
            glass = np.array([0.16, 0.20, 0.26], np.float32) + 0.25 * np.asarray(weather.sky_horizon, np.float32)
            light_level = np.float32(weather.ambient + 0.3 * weather.sun)
            rgb[:, facade[window]] = (glass * light_level)[:, None]
            shade[facade[window]] = 1.0
            if weather.night:
                key = (np.floor(col).astype(np.int64) * 73856093) ^ (np.floor(row).astype(np.int64) * 19349663)
                key ^= faces.instance[ids].astype(np.int64) * 83492791
                lit_window = window & ((key & 1023) < 380)
                emissive_rows.append(facade[lit_window])
                emissive_colours.append(np.array([0.95, 0.78, 0.45], np.float32))

        body = np.flatnonzero(material == T.MAT_CAR_BODY)
        if len(body):
            ids = face_ids[body]
            base, params = faces.base[ids], faces.param[ids]
            local_z = Z[body] - base[:, 0]
            light_level = np.float32(weather.ambient + 0.4 * weather.sun)
            tyre = local_z < 0.3
            rgb[:, body[tyre]] = np.float32(0.04) * light_level
            band = (local_z > params[:, 0]) & (local_z < params[:, 1]) & (params[:, 1] > 0)
            rgb[:, body[band]] = (np.array([0.10, 0.12, 0.15], np.float32) * light_level)[:, None]
            shade[body] = 1.0 + 0.4 * (shade[body] - 1.0)

        glassy = np.flatnonzero(material == T.MAT_GLASS)
        if len(glassy):
            ids = face_ids[glassy]
            side = np.abs(faces.normal[ids, 2]) < 0.5
            light_level = np.float32(weather.ambient + 0.4 * weather.sun)
            rgb[:, glassy[side]] = (np.array([0.10, 0.12, 0.15], np.float32) * light_level)[:, None]

        foliage = np.flatnonzero(material == T.MAT_FOLIAGE)
        if len(foliage):
            fine = self._noise_at(s[foliage], t[foliage], 23.0, depth[foliage], camera.focal)
            shade[foliage] = (fine - 1.0) * 3.0 + 1.0

        lights = np.flatnonzero(material == T.MAT_LIGHT)
        if len(lights):
            ids = face_ids[lights]
            base = faces.base[ids]
            level = (Z[lights] - base[:, 0]) / np.maximum(base[:, 1], 1e-3)
            facing = np.abs(faces.normal[ids, 2]) < 0.5
            red_on = (faces.instance[ids] % 3) == 0
            emissive_rows.append(lights[facing & (level > 0.7) & (level < 0.93) & red_on])
            emissive_colours.append(np.array([1.0, 0.15, 0.1], np.float32))
            emissive_rows.append(lights[facing & (level > 0.08) & (level < 0.3) & ~red_on])
            emissive_colours.append(np.array([0.2, 1.0, 0.4], np.float32))

        rgb *= shade

        if weather.wetness > 0:
            wet = np.flatnonzero(ground & ~sky)
            reflection = np.float32(0.18 * weather.wetness) * np.asarray(weather.sky_horizon, np.float32)
            rgb[:, wet] = rgb[:, wet] * np.float32(1.0 - 0.35 * weather.wetness) + reflection[:, None] * (
                shade[wet] - np.float32(0.8))

        if weather.night:
            # Headlights: a warm pool on what is close and central in front of the camera.
            u = (np.arange(width, dtype=np.float32) - width / 2) / (width / 2)
            falloff = np.tile(np.exp(-(u * u) * 3.0), height)
            beam = np.float32(1.4) * np.exp(-depth / np.float32(18.0)) * falloff
            albedo = np.take(np.ascontiguousarray(lit.T), rows, axis=1)
            rgb += albedo * (beam * np.float32(0.1 / max(weather.ambient, 1e-3)))
        for emitting, colour in zip(emissive_rows, emissive_colours):
            rgb[:, emitting] = colour[:, None]

        # Fog towards the horizon colour, then the sky itself.
        horizon = np.asarray(weather.sky_horizon, np.float32)[:, None]
        # Clamped at 0: pixels with no surface carry a negative depth, and exp would overflow there.
        fog = np.exp(np.minimum(depth * np.float32(-1.0 / weather.fog_distance_m), np.float32(0.0)))
        rgb -= horizon
        rgb *= fog
        rgb += horizon
        self._sky(rgb, sky, X, Y, Z, camera, weather)

        if weather.rain > 0:
            layer = self.rain_layers[frame_index % len(self.rain_layers)].reshape(-1)
            rgb += np.float32(0.35 * weather.rain) * layer
        rgb *= np.float32(255.0)
        np.clip(rgb, 0.0, 255.0, out=rgb)
        planes = rgb.astype(np.uint8).reshape(3, height, width)
        alpha = np.full((height, width), 255, np.uint8)
        bgra = cv2.LUT(cv2.merge([planes[2], planes[1], planes[0], alpha]), _GAMMA_LUT)
        # A light blur stands in for the anti-aliasing of a real camera (and of CARLA's renderer):
        # without it point-sampled edges and textures shimmer from frame to frame.
        return cv2.GaussianBlur(bgra, (3, 3), 0.6)

    def _noise_at(self, s: np.ndarray, t: np.ndarray, texels_per_m: float, depth: np.ndarray | None = None,
                  focal: float = 0.0) -> np.ndarray:
        """Noise texture around 1.0 at surface coordinates (s, t) metres.

        With `depth`, the contrast fades where a pixel spans more than about two texels: a poor
        man's mipmap, so that distant texture does not shimmer from frame to frame.
        """
        scale = np.float32(texels_per_m)
        column = (s * scale).astype(np.int32) & _TILE_MASK
        row = (t * scale).astype(np.int32) & _TILE_MASK
        row <<= 8
        row |= column
        values = self.noise.reshape(-1)[row]
        if depth is not None:
            contrast = np.float32(2.0 * focal / texels_per_m) / np.maximum(depth, np.float32(1e-3))
            np.minimum(contrast, np.float32(1.0), out=contrast)
            values -= np.float32(1.0)
            values *= contrast
            values += np.float32(1.0)
        return values

    def _sky(self, rgb: np.ndarray, sky: np.ndarray, X: np.ndarray, Y: np.ndarray, Z: np.ndarray, camera: Camera,
             weather: Weather) -> None:
        rows = np.flatnonzero(sky)
        if not len(rows):
            return
        dx = X[rows] - np.float32(camera.position[0])
        dy = Y[rows] - np.float32(camera.position[1])
        dz = Z[rows] - np.float32(camera.position[2])
        norm = np.sqrt(dx * dx + dy * dy + dz * dz) + np.float32(1e-6)
        elevation = np.clip(dz / norm, 0.0, 1.0)
        mix = np.sqrt(elevation)[:, None]
        horizon = np.asarray(weather.sky_horizon, np.float32)
        colour = horizon + (np.asarray(weather.sky_zenith, np.float32) - horizon) * mix  # (M, 3)
        # Clouds: noise on a plane high above, seen through each sky ray.
        lift = np.maximum(dz / norm, np.float32(0.03))
        clouds = self._noise_at(dx / norm / lift, dy / norm / lift, 40.0)
        amount = np.clip((clouds - 1.0) * 4.0 + weather.cloudiness * 1.5 - 0.2, 0.0, 1.0)[:, None] * 0.8
        cloud_colour = np.float32(0.85 if not weather.night else 0.05)
        colour += (cloud_colour - colour) * amount
        sun_dir = weather.sun_direction
        if sun_dir[2] > -0.05:
            cosine = (dx * np.float32(sun_dir[0]) + dy * np.float32(sun_dir[1]) + dz * np.float32(sun_dir[2])) / norm
            glow = np.clip((cosine - 0.97) / 0.03, 0.0, 1.0) ** 2 * np.float32(1.0 - weather.cloudiness)
            colour += glow[:, None] * np.asarray(weather.sun_colour, np.float32)
        rgb[:, rows] = colour.T


_GAMMA_LUT = np.clip(((np.arange(256) / 255.0) ** (1 / 1.25)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
