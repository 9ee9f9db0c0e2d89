"""`carla-neural sweep` on a real local Ray instance (2 CPUs, one session for the module): cells
record real run folders in child processes; killed cells are retried, then reported; finished cells
are skipped on a rerun; Ctrl-C leaves finished runs intact; the HTML index links every run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="needs the sweep extra: pip install 'carla-neural[sweep]'")

from scenarios.sweep.cells import expand_cells, run_is_complete  # noqa: E402
from scenarios.sweep.index import write_summary  # noqa: E402
from scenarios.sweep.runner import run_sweep  # noqa: E402
from scenarios.sweep.schema import load_sweep  # noqa: E402

CLI = [str(Path(sys.executable).with_name("carla-neural"))]
BASE = """
name: tiny
traffic: {{vehicles: 2, walkers: 1, seed: 3}}
duration: {{frames: 2}}
cameras: {{width: 64, height: 32}}
rendering: {{checkpoint: {checkpoint}, engine: torch}}
"""


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the whole module: starting Ray takes several seconds."""
    saved = dict(os.environ)
    # Ray's processes, and so the cells' records, inherit this environment.
    os.environ.update(SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", OMP_NUM_THREADS="1")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1", logging_level="warning")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


def sweep_file(folder: Path, checkpoint: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(BASE.format(checkpoint=checkpoint))
    path = folder / "sweep.yaml"
    path.write_text("scenario: base.yaml\npng: false\n" + body)
    return path


class Killer(threading.Thread):
    """Kills each named cell's record process with SIGKILL as soon as its pid file appears, `kills`
    times per cell (one kill per attempt)."""

    def __init__(self, logs: Path, kills: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.logs, self.remaining = logs, dict(kills)
        self.killed: dict[str, list[int]] = {name: [] for name in kills}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and any(self.remaining.values()):
            for name, left in self.remaining.items():
                try:
                    pid, attempt, _ = (self.logs / f"{name}.pid").read_text().split()
                except (OSError, ValueError):
                    continue
                if left and int(attempt) not in self.killed[name]:
                    os.kill(int(pid), signal.SIGKILL)
                    self.killed[name].append(int(attempt))
                    self.remaining[name] -= 1
            self.stop.wait(0.02)


@pytest.fixture(scope="module")
def killed_sweep(ray_session, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two cells, one retry each, compared (tOF) when finished: seed 1 is killed once (its retry
    records it), seed 2 is killed on both attempts (then reported)."""
    folder = tmp_path_factory.mktemp("killed")
    path = sweep_file(folder, tiny_checkpoint, "name: killed\nretries: 1\naxes: {seed: [1, 2]}\n")
    sweep = load_sweep(path)
    cells = expand_cells(sweep, path)
    out = folder / "out"
    killer = Killer(out / "logs", {"seed-1": 1, "seed-2": 2})
    killer.start()
    try:
        outcome = run_sweep(sweep, cells, out, compare_metrics="tof")
    finally:
        killer.stop.set()
        killer.join()
    write_summary(sweep, path, outcome, out)
    return sweep, path, cells, out, outcome, killer


def test_a_killed_cell_is_retried_and_its_run_completes(killed_sweep) -> None:
    _, _, _, out, outcome, killer = killed_sweep
    assert killer.killed["seed-1"] == [1]
    result = {result.cell.name: result for result in outcome.results}["seed-1"]
    assert result.status == "done" and result.attempts == 2
    assert run_is_complete(out / "seed-1")
    log = (out / "logs" / "seed-1.log").read_text()
    assert "attempt 1 of sweep" in log and "killed by signal SIGKILL" not in log  # the task's log says:
    assert "exit status -9" in log and "attempt 2 of sweep" in log and "exit status 0" in log


def test_a_cell_killed_on_every_attempt_is_reported_with_its_log(killed_sweep) -> None:
    _, _, _, out, outcome, killer = killed_sweep
    assert killer.killed["seed-2"] == [1, 2]
    result = {result.cell.name: result for result in outcome.results}["seed-2"]
    assert result.status == "failed" and result.attempts == 2
    assert "killed by signal SIGKILL" in result.error and str(out / "logs" / "seed-2.log") in result.error
    assert not run_is_complete(out / "seed-2")
    document = json.loads((out / "sweep.json").read_text())
    assert document["counts"]["done"] == 1 and document["counts"]["failed"] == 1


def test_a_rerun_skips_complete_cells_and_leaves_them_untouched(killed_sweep) -> None:
    sweep, _, cells, out, _, _ = killed_sweep
    summary = out / "seed-1" / "summary.json"
    before = (summary.stat().st_mtime_ns, (out / "seed-1" / "neural.mp4").read_bytes())
    outcome = run_sweep(sweep, [cell for cell in cells if cell.name == "seed-1"], out)
    assert [result.status for result in outcome.results] == ["skipped"]
    assert (summary.stat().st_mtime_ns, (out / "seed-1" / "neural.mp4").read_bytes()) == before


class IndexTable(HTMLParser):
    """The rows of index.html's cell table: each row's cell texts and link targets."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "tr" and "data-cell" in attributes:
            self.rows.append({"name": attributes["data-cell"], "class": attributes.get("class"),
                              "texts": [], "links": {}})
        elif tag == "td" and self.rows:
            self._cell = []
        elif tag == "a" and self.rows:
            self.rows[-1]["links"][attributes["href"]] = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data.strip())
            if self.rows and self.rows[-1]["links"] and None in self.rows[-1]["links"].values():
                last = list(self.rows[-1]["links"])[-1]
                self.rows[-1]["links"][last] = data.strip()

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1]["texts"].append(" ".join(text for text in self._cell if text))
            self._cell = None


def test_the_index_has_a_row_per_cell_with_axes_figures_and_links(killed_sweep) -> None:
    _, _, _, out, _, _ = killed_sweep
    table = IndexTable()
    table.feed((out / "index.html").read_text())
    rows = {row["name"]: row for row in table.rows}
    assert set(rows) == {"seed-1", "seed-2"}
    done, failed = rows["seed-1"], rows["seed-2"]
    # cell, seed, status, attempts, frames, fps, tof_px (compare's headline figure), links
    assert done["texts"][:5] == ["seed-1", "1", "done", "2", "2"] and float(done["texts"][5]) > 0
    metrics = json.loads((out / "seed-1" / "metrics.json").read_text())
    assert float(done["texts"][6]) == pytest.approx(metrics["tof"]["mean_px"], rel=1e-3)
    assert failed["class"] == "failed" and failed["texts"][4] == "—" and failed["texts"][6] == "—"
    for row in (done, failed):
        for href in row["links"]:
            assert (out / href).is_file(), href
    assert {"report", "summary", "video", "log"} <= set(done["links"].values())
    assert list(failed["links"].values()) == ["log"]


def test_ctrl_c_keeps_finished_runs_and_does_not_count_partial_ones(ray_session, tiny_checkpoint: Path,
                                                                    tmp_path: Path) -> None:
    """A real sweep process on the module's Ray instance; SIGINT to its process group as a terminal
    sends it, once the short cell has finished and the long one is recording."""
    path = sweep_file(tmp_path, tiny_checkpoint, "name: stop\naxes: {frames: [2, 5000]}\n")
    out = tmp_path / "out"
    process = subprocess.Popen([*CLI, "sweep", str(path), "--out", str(out), "--ray-address", ray_session],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        long_frames = out / "frames-5000" / "frames.jsonl"
        while time.monotonic() < deadline and process.poll() is None:
            if run_is_complete(out / "frames-2") and long_frames.is_file() and long_frames.read_text():
                break
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert stdout.startswith("interrupted: sweep stop: 2 cells (1 done, 1 interrupted)")
    assert len(stdout.strip().splitlines()) == 1
    document = json.loads((out / "sweep.json").read_text())
    cells = {cell["name"]: cell for cell in document["cells"]}
    assert document["interrupted"] and cells["frames-2"]["status"] == "done"
    assert cells["frames-5000"]["status"] == "interrupted" and cells["frames-5000"]["frames"] is None
    assert run_is_complete(out / "frames-2")
    # The long cell's record was stopped cleanly (summary written, fewer frames), not counted.
    partial = json.loads((out / "frames-5000" / "summary.json").read_text())
    assert 0 < partial["frames"] < 5000 and not run_is_complete(out / "frames-5000")


@pytest.mark.parametrize(("setting", "needs"), [("world: carla", "carla_server resource"),
                                                ("device: cuda", "no Ray node offers a GPU")],
                         ids=["carla", "gpu"])
def test_cells_whose_resources_no_node_offers_are_refused_before_anything_runs(
        ray_session, tiny_checkpoint: Path, tmp_path: Path, setting: str, needs: str) -> None:
    from scenarios.sweep.schema import SweepError

    path = sweep_file(tmp_path, tiny_checkpoint, f"name: far\n{setting}\naxes: {{seed: [1]}}\n")
    sweep = load_sweep(path)
    with pytest.raises(SweepError, match=needs):
        run_sweep(sweep, expand_cells(sweep, path), tmp_path / "out")
    assert not (tmp_path / "out").exists()
