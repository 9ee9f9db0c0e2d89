"""A recorded run folder replays as a Source whose frames remap to what was recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carla_neural.recorder import FrameRecord, Recorder, RecorderConfig, read_frames_jsonl
from carla_neural.remap import Remapper
from carla_neural.sources.encoding import backward_flow_px, bgra_to_rgb, read_flow_png
from carla_neural.sources.replay import EndOfReplay, ReplaySource


def carla_frame(rng: np.random.Generator, height: int = 24, width: int = 32):
    """CARLA-encoded semantic, instance, rgb and flow images with every 0.9.14 tag present."""
    tags = rng.integers(0, 29, (height, width), dtype=np.uint8)
    semantic = np.zeros((height, width, 4), np.uint8)
    semantic[..., 2] = tags
    instance = semantic.copy()
    object_ids = rng.integers(0, 2000, (height, width), dtype=np.uint16)
    instance[..., 1] = object_ids & 0xFF
    instance[..., 0] = object_ids >> 8
    rgb = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    flow = rng.uniform(-0.2, 0.2, (height, width, 2)).astype(np.float32)
    return semantic, instance, rgb, flow


def test_replayed_frames_carry_the_recorded_streams(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    remapper = Remapper("0.9.14")
    recorded = []
    config = RecorderConfig(fps=20.0, videos=("raw",), side_by_side=False,
                            png=("raw", "label_ids", "instance_ids", "flow"))
    with Recorder(tmp_path / "run", config, run_info={"source": "test"}) as recorder:
        for frame_id in (100, 101, 102):
            semantic, instance, rgb, flow = carla_frame(rng)
            record = FrameRecord(
                frame_id=frame_id, sim_time=frame_id * 0.05, raw=bgra_to_rgb(rgb),
                label_ids=remapper.label_ids(semantic), instance_ids=remapper.instance_ids(instance),
                flow_px=backward_flow_px(flow),
            )
            recorder.write(record)
            recorded.append(record)

    source = ReplaySource(tmp_path / "run")
    assert len(source) == 3
    for record in recorded:
        frame = source.tick()
        assert frame.frame_id == record.frame_id
        assert frame.sim_time == pytest.approx(record.sim_time)
        assert frame.semantic_bgra is None and frame.size == (32, 24)
        assert frame.label_ids.dtype == np.uint8 and np.array_equal(frame.label_ids, record.label_ids)
        assert frame.instance_ids.dtype == np.int32 and np.array_equal(frame.instance_ids, record.instance_ids)
        assert np.array_equal(bgra_to_rgb(frame.rgb_bgra), record.raw)
        assert np.abs(backward_flow_px(frame.flow) - record.flow_px).max() <= 1 / 64
    with pytest.raises(EndOfReplay):
        source.tick()


def test_a_replayed_run_renders_the_recorded_label_maps_without_remapping(
        tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Record the built-in world in-process, replay it with the same weights: the same label maps,
    instance ids and neural frames, and not one call to the remapper while replaying."""
    import cv2

    from carla_neural.runs import BackendSpec, RecordSpec, RunSpec, SourceSpec, demo_world, open_run

    calls = {"label_ids": 0, "instance_ids": 0}

    def counted(name: str):
        real = getattr(Remapper, name)

        def wrapper(self, image):
            calls[name] += 1
            return real(self, image)
        return wrapper

    for name in calls:
        monkeypatch.setattr(Remapper, name, counted(name))
    backend = BackendSpec(checkpoint=str(tiny_checkpoint), device="cpu", in_process=True, threads=1)

    def record(source: SourceSpec, out: Path) -> None:
        with open_run(RunSpec(command="test", source=source, backend=backend, size=(64, 32), frames=4,
                              record=RecordSpec(out))) as run:
            run.run()

    original, again = tmp_path / "original", tmp_path / "again"
    record(demo_world(64, 32, seed=4), original)
    assert calls == {"label_ids": 4, "instance_ids": 4}  # the built-in world's frames are remapped
    record(SourceSpec("replay", replay_dir=original), again)
    assert calls == {"label_ids": 4, "instance_ids": 4}  # the replayed ones are not
    ids = [line["frame_id"] for line in read_frames_jsonl(again / "frames.jsonl")]
    assert ids == [line["frame_id"] for line in read_frames_jsonl(original / "frames.jsonl")] and len(ids) == 4
    for frame_id in ids:
        for kind in ("label_ids", "instance_ids", "neural"):
            stem = f"frames/{kind}/{frame_id:06d}.png"
            before = cv2.imread(str(original / stem), cv2.IMREAD_UNCHANGED)
            after = cv2.imread(str(again / stem), cv2.IMREAD_UNCHANGED)
            assert before is not None and np.array_equal(before, after), (kind, frame_id)


def test_replay_needs_label_pngs(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="label_ids"):
        ReplaySource(tmp_path / "run")


@pytest.mark.slow
def test_record_replay_re_renders_a_run_with_another_checkpoint(tmp_path: Path) -> None:
    """`record --replay RUN` renders RUN's label maps again: same frames, same labels, new neural."""
    import json
    import os
    import subprocess
    import sys

    import cv2

    from renderer.checkpoint import save_checkpoint
    from renderer.model.config import GeneratorConfig, SingleGConfig
    from renderer.model.generator import build_generator

    config = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=2, n_blocks_local=1, n_scales=1,
                             single_g=SingleGConfig(kind="global", ngf=8, n_downsampling=2, n_blocks=1))
    first = save_checkpoint(build_generator(config, seed=0), tmp_path / "first")
    second = save_checkpoint(build_generator(config, seed=1), tmp_path / "second")
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text("name: tiny\ntraffic: {vehicles: 2, walkers: 2}\ncameras: {width: 64, height: 32}\n")
    cli = str(Path(sys.executable).with_name("carla-neural"))
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "OMP_NUM_THREADS": "1"}

    def record(*args: str) -> None:
        result = subprocess.run([cli, "record", *args], capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr

    record(str(scenario), "--out", str(tmp_path / "original"), "--world", "builtin", "--frames", "3",
           "--checkpoint", str(first))
    record("--replay", str(tmp_path / "original"), "--out", str(tmp_path / "again"), "--checkpoint", str(second))

    original, again = tmp_path / "original", tmp_path / "again"
    info = json.loads((again / "run.json").read_text())
    assert info["scenario"] == "tiny" and info["source"].startswith(f"replay of {original}")
    assert info["checkpoint"] == str(second)
    ids = [line["frame_id"] for line in read_frames_jsonl(again / "frames.jsonl")]
    assert len(ids) == 3
    for frame_id in ids:
        stem = f"{frame_id:06d}.png"
        for kind in ("label_ids", "instance_ids", "raw"):
            before = cv2.imread(str(original / "frames" / kind / stem), cv2.IMREAD_UNCHANGED)
            after = cv2.imread(str(again / "frames" / kind / stem), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(before, after), (kind, frame_id)
        flow_before = read_flow_png(original / "frames/flow" / stem)[0]
        flow_after = read_flow_png(again / "frames/flow" / stem)[0]
        assert np.abs(flow_before - flow_after).max() <= 1 / 32
    # Different weights, different pictures.
    stem = f"{ids[-1]:06d}.png"
    assert not np.array_equal(cv2.imread(str(original / "frames/neural" / stem)),
                              cv2.imread(str(again / "frames/neural" / stem)))
