"""A run assembled from a RunSpec (carla_neural.runs): a real worker process, the built-in world,
a recorder; what every command gets from it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from carla_neural.recorder import read_frames_jsonl
from carla_neural.runs import BackendSpec, RecordSpec, RunSpec, SourceSpec, demo_world, open_run


@pytest.mark.slow
def test_a_recorded_run_counts_worker_restarts_and_loses_no_frame(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    spec = RunSpec(command="test", source=demo_world(64, 32, seed=2), size=(64, 32), frames=6,
                   backend=BackendSpec(checkpoint=str(tiny_checkpoint), device="cpu", cpu_split=False,
                                       threads=1, worker_log=tmp_path / "worker.log"),
                   record=RecordSpec(out, png=False), run_info={"note": "kept"})
    with open_run(spec, summary_extra={"scenario": "none"}) as run:
        first_pid = run.supervisor.pid

        def kill_after_second(presented) -> None:
            if run.supervisor.pid == first_pid and run.pipeline.frames_presented == 2:
                os.kill(first_pid, signal.SIGKILL)

        run.run(kill_after_second)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == run.summary
    assert summary["worker"]["restarts"] == 1 and summary["worker"]["recoveries"] == 1
    assert summary["frames"] == 6 and summary["pipeline"]["frames"] == 6 and summary["scenario"] == "none"
    ids = [line["frame_id"] for line in read_frames_jsonl(out / "frames.jsonl")]
    assert ids == list(range(ids[0], ids[0] + 6))
    info = json.loads((out / "run.json").read_text())
    assert info["command"] == "test" and info["note"] == "kept" and info["mode"] == "lockstep"
    assert info["source"].startswith("builtin world (urban, seed 2") and info["tag_scheme"] == "0.9.14"
    assert info["worker"]["threads"] == 1 and info["frames_requested"] == 6
    assert info["label_transform"] == {"enabled": False}
    assert "raw.mp4" in info["videos"] and info["png"] == []
    assert "ready" in (tmp_path / "worker.log").read_text()


def test_a_spec_names_what_a_source_lacks() -> None:
    with pytest.raises(ValueError, match="a replay source needs SourceSpec.replay_dir"):
        SourceSpec("replay")
    with pytest.raises(ValueError, match="source kind='moon'"):
        SourceSpec("moon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        BackendSpec(worker="tcp://127.0.0.1:5555", in_process=True)


def test_an_in_process_run_without_recorder_or_display(tiny_checkpoint: Path) -> None:
    spec = RunSpec(command="test", source=demo_world(64, 32, seed=3), size=(64, 32), frames=3,
                   backend=BackendSpec(checkpoint=str(tiny_checkpoint), device="cpu", in_process=True, threads=1))
    shown = []
    with open_run(spec) as run:
        summary = run.run(lambda presented: shown.append(presented.neural_rgb.shape))
    assert summary["frames"] == 3 and shown == [(32, 64, 3)] * 3
    assert run.summary is None and run.client is None and run.backend_text.startswith("in-process renderer")


GROUND = 6  # a labelId the real maps never hold: the label transform maps it to sidewalk


def test_the_label_transform_sits_between_remap_and_the_renderer(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import cv2

    from carla_neural.label_transform import CALIBRATED_CONFIG, LabelTransform, load_transform_config
    from carla_neural.runs import adapt_spec

    out = tmp_path / "run"
    spec = RunSpec(command="test", source=demo_world(128, 64, seed=5, mount="hood"), size=(128, 64), frames=5,
                   backend=BackendSpec(checkpoint=str(tiny_checkpoint), device="cpu", in_process=True, threads=1),
                   record=RecordSpec(out), adapt=adapt_spec(True))
    presented = []
    with open_run(spec) as run:

        def switch_off_after_the_third(frame) -> None:
            presented.append(frame)
            if len(presented) == 3:
                run.pipeline.set_adapt_labels(False)

        run.run(switch_off_after_the_third)
    # The switch acts on frames acquired after it: the fourth was already with the renderer
    # (lock-step keeps two in flight).
    timed = ["adapt" in line["timings_ms"] for line in read_frames_jsonl(out / "frames.jsonl")]
    assert timed == [True, True, True, True, False]
    transform = LabelTransform(load_transform_config())
    for adapted, frame in zip(timed, presented):
        recorded = cv2.imread(str(out / "frames" / "label_ids" / f"{frame.frame.frame_id:06d}.png"),
                              cv2.IMREAD_UNCHANGED)
        # The recorder keeps the simulator's map; the renderer got the transformed one while it was on
        # (the hood mount sees the ground the transform maps away).
        assert (recorded == frame.label_ids).all() and (frame.label_ids == GROUND).sum() > 100
        if adapted:
            assert (frame.render_label_ids == transform(frame.label_ids)).all()
            assert not (frame.render_label_ids == GROUND).any()
        else:
            assert (frame.render_label_ids == frame.label_ids).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pipeline"]["stages_ms"]["adapt"]["count"] == 4
    info = json.loads((out / "run.json").read_text())["label_transform"]
    assert info["enabled"] and info["config_file"] == str(CALIBRATED_CONFIG)
    assert info["config"] == json.loads(CALIBRATED_CONFIG.read_text())["config"]


def test_without_a_transform_there_is_none_to_switch_on(tiny_checkpoint: Path) -> None:
    spec = RunSpec(command="test", source=demo_world(64, 32, seed=3), size=(64, 32), frames=1,
                   backend=BackendSpec(checkpoint=str(tiny_checkpoint), device="cpu", in_process=True, threads=1))
    with open_run(spec) as run:
        with pytest.raises(ValueError, match="no label transform"):
            run.pipeline.set_adapt_labels(True)
        run.run()
    assert "adapt" not in run.pipeline.summary()["stages_ms"]
