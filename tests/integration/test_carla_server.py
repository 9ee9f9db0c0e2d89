"""The live CARLA source with the real `carla` client library.

The no-server test runs everywhere the carla wheel is installed. The others need a running
CARLA 0.9.16 server: set CARLA_HOST / CARLA_PORT (default 127.0.0.1:2000), e.g. after
`docker compose -f docker/compose.yaml up -d carla`.
"""

from __future__ import annotations

import os
import socket
import time

import numpy as np
import pytest

pytest.importorskip("carla", reason="needs the carla client wheel (pip install 'carla-neural[carla]')")

from carla_neural.sources.carla_session import CarlaConnectionError  # noqa: E402
from carla_neural.sources.carla_source import CameraRig, CarlaConfig, CarlaSource  # noqa: E402

CARLA_HOST = os.environ.get("CARLA_HOST", "127.0.0.1")
CARLA_PORT = int(os.environ.get("CARLA_PORT", "2000"))


def _server_listening() -> bool:
    try:
        with socket.create_connection((CARLA_HOST, CARLA_PORT), timeout=0.5):
            return True
    except OSError:
        return False


needs_server = pytest.mark.skipif(
    not _server_listening(),
    reason=f"needs a running CARLA server at {CARLA_HOST}:{CARLA_PORT} (set CARLA_HOST/CARLA_PORT)",
)


def _closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_no_server_gives_a_clear_error_within_seconds() -> None:
    port = _closed_loopback_port()
    started = time.monotonic()
    with pytest.raises(CarlaConnectionError) as caught:
        CarlaSource(CarlaConfig(host="127.0.0.1", port=port, timeout_s=1.0))
    assert time.monotonic() - started < 10.0
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "--world builtin" in message and "CarlaUE4.sh" in message


@pytest.mark.carla_server
@needs_server
def test_frames_from_a_live_server_and_everything_restored() -> None:
    import carla

    client = carla.Client(CARLA_HOST, CARLA_PORT)
    client.set_timeout(10.0)
    world = client.get_world()
    before = world.get_settings()
    actors_before = {a.id for a in world.get_actors()}
    config = CarlaConfig(host=CARLA_HOST, port=CARLA_PORT, seed=3, vehicles=5, walkers=3,
                         autopilot=True, camera=CameraRig(width=160, height=96, fov=90.0))
    with CarlaSource(config) as source:
        assert source.server_version
        assert world.get_settings().synchronous_mode is True
        frames = [source.tick() for _ in range(4)]
        source.set_weather("HardRainNight")
        source.set_mount("chase")
        assert source.mount == "chase"
        frames.append(source.tick())
    ids = [f.frame_id for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    frame = frames[-1]
    assert frame.semantic_bgra.shape == (96, 160, 4) and frame.semantic_bgra.dtype == np.uint8
    assert frame.flow.shape == (96, 160, 2) and frame.flow.dtype == np.float32
    assert frame.depth_bgra.shape == frame.rgb_bgra.shape == frame.instance_bgra.shape == (96, 160, 4)
    assert frame.semantic_bgra[..., 2].max() <= 29
    after = world.get_settings()
    assert after.synchronous_mode == before.synchronous_mode
    assert after.fixed_delta_seconds == before.fixed_delta_seconds
    world.wait_for_tick()
    assert {a.id for a in world.get_actors()} <= actors_before


@pytest.mark.carla_server
@needs_server
def test_error_inside_the_session_restores_the_server() -> None:
    import carla

    client = carla.Client(CARLA_HOST, CARLA_PORT)
    client.set_timeout(10.0)
    world = client.get_world()
    before = world.get_settings().synchronous_mode
    with pytest.raises(RuntimeError, match="boom"):
        with CarlaSource(CarlaConfig(host=CARLA_HOST, port=CARLA_PORT,
                                     camera=CameraRig(width=64, height=32))) as source:
            source.tick()
            raise RuntimeError("boom")
    assert world.get_settings().synchronous_mode == before


@pytest.mark.carla_server
@needs_server
def test_flow_sign_warps_the_previous_frame_onto_the_current_one() -> None:
    """CARLA does not document its flow's direction; `backward_flow_px` fixes one. Pin it on live data."""
    from carla_neural.sources.encoding import backward_flow_px, bgra_to_rgb, warp_backward

    config = CarlaConfig(host=CARLA_HOST, port=CARLA_PORT, seed=5, vehicles=10, walkers=0,
                         autopilot=True, camera=CameraRig(width=320, height=160, fov=90.0))
    with CarlaSource(config) as source:
        frames = [source.tick() for _ in range(60)]  # the ego is moving well before the end
    # Every sign combination of the decoded flow: the convention must beat the other three.
    signs = {"as decoded": (1.0, 1.0), "x flipped": (-1.0, 1.0), "y flipped": (1.0, -1.0), "both flipped": (-1.0, -1.0)}
    errors: dict[str, list[float]] = {name: [] for name in [*signs, "no warp"]}
    for previous, current in zip(frames[-20:-1], frames[-19:]):
        before = bgra_to_rgb(previous.rgb_bgra).astype(np.float32)
        after = bgra_to_rgb(current.rgb_bgra).astype(np.float32)
        flow_px = backward_flow_px(current.flow)
        for name, sign in signs.items():
            warped = warp_backward(before, flow_px * np.array(sign, np.float32))
            errors[name].append(float(np.abs(warped - after).mean()))
        errors["no warp"].append(float(np.abs(before - after).mean()))
    means = {name: float(np.mean(values)) for name, values in errors.items()}
    assert min(signs, key=means.__getitem__) == "as decoded", means
    assert means["as decoded"] < 0.8 * means["no warp"], means
