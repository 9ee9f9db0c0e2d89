"""One way to assemble a run: source, render backend, view and recorder from one typed `RunSpec`.

`demo`, `record`, `drive`, the stage benchmark and the scenario runner (scenarios/, which maps a
scenario onto a RunSpec) all call `open_run(spec)`:

    with open_run(spec) as run:
        summary = run.run(on_frame=...)     # the pipeline's summary
    run.summary                             # what summary.json holds (recorded runs)

It opens, in this order and closes in reverse: the CPU split (this process on the lower half of
the CPUs, the worker it starts on the upper half), the render backend (a worker we start, a
running one, or the renderer in-process), the source (built-in world, live CARLA or a replayed run
folder), the display and the recorder; the label transform (`AdaptSpec`) goes into the pipeline,
between remap and the renderer. It also owns the run folder: run.json's facts, and
summary.json's pipeline and worker figures (restarts included) for every command alike.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from carla_neural.backends import ClientBackend, InProcessBackend, RenderBackend
from carla_neural.pipeline import Mode, Pipeline, PipelineConfig, Presented
from carla_neural.sources.base import Source
from carla_neural.sources.replay import ReplaySource
from renderer.checkpoint_ref import BUNDLED, BUNDLED_ADAPTED
from renderer.protocol import StyleChoice

if TYPE_CHECKING:
    from carla_neural.label_transform import LabelTransformConfig
    from carla_neural.sources.carla_source import CarlaConfig
    from carla_neural.sources.world import WorldConfig

log = logging.getLogger(__name__)

SourceKind = Literal["builtin", "carla", "replay"]
# The model a run renders with when neither the command line nor the scenario names one. The
# built-in world gets the street model fine-tuned on its maps (`carla-neural adapt`); CARLA's maps
# get the street model itself: no CARLA server was at hand to measure the adapted one on them.
WORLD_CHECKPOINTS = {"builtin": BUNDLED_ADAPTED, "carla": BUNDLED}


def default_checkpoint(world: str) -> str:
    """The checkpoint reference of a run on `world` ("builtin" or "carla") that names none."""
    return WORLD_CHECKPOINTS[world]


def transform_by_default(checkpoint: str | Path) -> bool:
    """Whether a run with `checkpoint` gets the label transform unless told otherwise: only the
    shipped adapted model, which was fine-tuned on maps through the calibrated transform."""
    return str(checkpoint) == BUNDLED_ADAPTED


# PNG kinds and the sensor each needs (None: every run has it).
_PNG_SENSORS = {"raw": "rgb", "neural": None, "label_ids": None, "instance_ids": "instance", "flow": "flow"}


@dataclass(frozen=True)
class SourceSpec:
    """Where frames come from: the built-in world (`world`), live CARLA (`carla`) or a run folder
    replayed (`replay_dir`); `step_s` is CARLA's fixed step (the others have their own)."""

    kind: SourceKind
    world: "WorldConfig | None" = None
    carla: "CarlaConfig | None" = None
    replay_dir: Path | None = None

    def __post_init__(self) -> None:
        needed = {"builtin": self.world, "carla": self.carla, "replay": self.replay_dir}
        if self.kind not in needed:
            raise ValueError(f"source kind={self.kind!r}: choose one of {', '.join(needed)}")
        if needed[self.kind] is None:
            field_name = {"builtin": "world", "carla": "carla", "replay": "replay_dir"}[self.kind]
            raise ValueError(f"a {self.kind} source needs SourceSpec.{field_name}")


@dataclass(frozen=True)
class BackendSpec:
    """What renders: a worker we start (default), a running one at `worker`, or `in_process`.

    cpu_split: give the worker we start the upper half of the CPUs (one renderer thread each) and
        keep this process on the lower half (carla_neural.cpu_split).
    threads: the renderer's CPU threads (torch) where no split decides them; None: torch's own.
    worker_log: where the worker we start writes its output (default: a temporary file).
    """

    checkpoint: str = "bundled"
    engine: str = "torch"
    device: str = "auto"
    worker: str | None = None
    in_process: bool = False
    cpu_split: bool = True
    threads: int | None = None
    worker_log: Path | None = None
    style: StyleChoice | None = None  # the run's style (docs/styles.md); None: none, as before

    def __post_init__(self) -> None:
        if self.worker and self.in_process:
            raise ValueError("BackendSpec: give worker= (a running worker) or in_process=True, not both")


@dataclass(frozen=True)
class DisplaySpec:
    """A window (or an off-screen surface when headless); `title` may name `{source}`."""

    title: str = "carla-neural"
    headless: bool | None = None  # None: headless when there is no screen
    autopilot: bool = True


@dataclass(frozen=True)
class RecordSpec:
    """A run folder to write: every video the source's sensors allow, PNG frames with `png`."""

    out_dir: Path
    png: bool = True


@dataclass(frozen=True)
class AdaptSpec:
    """The label transform between remap and the renderer (carla_neural.label_transform).

    enabled: applied from the first frame; False keeps it ready for drive's toggle key.
    config: its settings (load_transform_config: the calibrated ones by default).
    config_file: the file they came from, for run.json.
    """

    config: "LabelTransformConfig"
    enabled: bool = True
    config_file: Path | None = None

    def facts(self) -> dict[str, Any]:
        """run.json's `label_transform`: on or off, the file and the full config."""
        return {"enabled": self.enabled, "config_file": str(self.config_file) if self.config_file else None,
                "config": self.config.model_dump(mode="json")}


@dataclass(frozen=True)
class RunSpec:
    """One run: what to open, how to run it, and the facts for run.json."""

    command: str
    source: SourceSpec
    backend: BackendSpec = field(default_factory=BackendSpec)
    size: tuple[int, int] = (512, 256)
    mode: Mode = "lockstep"
    frames: int | None = None  # None: until the source ends (replay), Esc or stop()
    display: DisplaySpec | None = None
    record: RecordSpec | None = None
    max_fps: float | None = None
    step_s: float = 0.05  # simulated seconds per frame where the source has no fixed step of its own
    adapt: AdaptSpec | None = None  # None: no label transform (and none to switch on)
    run_info: Mapping[str, Any] = field(default_factory=dict)


class Run:
    """An open run: `source`, `backend`, `view`, `recorder`, `pipeline` (see `open_run`)."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.source: Source | None = None
        self.source_text = ""
        self.backend: RenderBackend | None = None
        self.backend_text = ""
        self.client: Any = None  # the render client, when a worker renders
        self.supervisor: Any = None  # the worker we started, if any
        self.split: Any = None
        self.display: Any = None
        self.view: Any = None
        self.recorder: Any = None
        self.pipeline: Pipeline | None = None
        self.step_s = spec.step_s
        self.total_frames: int | None = spec.frames
        self.pipeline_summary: dict[str, Any] | None = None
        self.summary: dict[str, Any] | None = None

    def run(self, on_frame: Callable[[Presented], bool | None] | None = None,
            frames: int | None = None) -> dict[str, Any]:
        """Run the pipeline for `frames` (default: the spec's); return the pipeline's summary."""
        assert self.pipeline is not None
        self.pipeline_summary = self.pipeline.run(frames if frames is not None else self.total_frames, on_frame)
        return self.pipeline_summary

    def worker_stats(self) -> dict[str, Any]:
        """Worker restarts and the client's recovery counters (summary.json's `worker`)."""
        if self.client is None:
            return {}
        restarts = self.supervisor.restarts if self.supervisor is not None else 0
        return {"restarts": restarts, **self.client.stats}

    def renderer_facts(self) -> dict[str, Any]:
        """checkpoint, engine, device and working size as the worker reports them (what it really
        serves, which differs from our options when we use a running worker)."""
        backend = self.spec.backend
        facts = (self.client.facts if self.client is not None else {}) or {}
        return {
            "checkpoint": facts.get("checkpoint", backend.checkpoint),
            "engine": facts.get("engine", backend.engine),
            "device": facts.get("device", backend.device),
            "working_size": facts.get("working_size"),
            **({"style": backend.style.label} if backend.style is not None else {}),
        }

    def _finish(self, summary_extra: Mapping[str, Any]) -> None:
        """Close the recorder with the pipeline's and the worker's figures (also after an error)."""
        if self.recorder is None:
            return
        pipeline_summary = self.pipeline_summary
        if pipeline_summary is None and self.pipeline is not None:
            pipeline_summary = self.pipeline.summary()
        extra = {**summary_extra, "pipeline": pipeline_summary or {}}
        if self.client is not None:
            extra["worker"] = self.worker_stats()
        self.summary = self.recorder.close(extra)


@contextlib.contextmanager
def open_run(spec: RunSpec, summary_extra: Mapping[str, Any] | None = None) -> Iterator[Run]:
    """Open everything `spec` names, yield the Run, and close it all (recorder first, with the
    pipeline's summary, so that a stopped or failed run still leaves a complete run folder)."""
    from carla_neural.cpu_split import pinned, plan_split

    run = Run(spec)
    with contextlib.ExitStack() as stack:
        starts_worker = not spec.backend.worker and not spec.backend.in_process
        run.split = plan_split() if starts_worker and spec.backend.cpu_split else None
        stack.enter_context(pinned(run.split.pipeline if run.split else None))
        _open_backend(run, stack)
        run.source, run.source_text = stack.enter_context(open_source(spec.source))
        run.step_s = source_step_s(run.source, spec.step_s)
        if isinstance(run.source, ReplaySource):  # it holds so many frames and no more
            run.total_frames = min(spec.frames or len(run.source), len(run.source))
        if spec.display is not None:
            _open_view(run, stack)
        if spec.record is not None:
            run.recorder = _open_recorder(run)
            stack.callback(run._finish, dict(summary_extra or {}))
        run.pipeline = Pipeline(run.source, run.backend, run.view, run.recorder, PipelineConfig(
            mode=spec.mode, record_flow=run.recorder is not None and "flow" in sensors_of(run.source),
            label_transform=_label_transform(spec.adapt), adapt_labels=spec.adapt is not None and spec.adapt.enabled,
            max_fps=spec.max_fps))
        yield run


def adapt_spec(enabled: bool | None, config_file: str | Path | None = None,
               keep_off: bool = False, checkpoint: str | Path | None = None) -> AdaptSpec | None:
    """The label transform of a run: its config read from `config_file` (default: the calibrated
    one); `enabled` None: on when a config file is given, else as `transform_by_default(checkpoint)`.
    None when off, unless `keep_off` (drive: a key switches it on later).

    Raises TransformConfigError (a ValueError naming the file and the field) for a bad file, so
    that a command fails before it writes anything.
    """
    from carla_neural.label_transform import CALIBRATED_CONFIG, load_transform_config

    if enabled is None:
        enabled = config_file is not None or (checkpoint is not None and transform_by_default(checkpoint))
    if not enabled and not keep_off:
        return None
    path = Path(config_file) if config_file is not None else CALIBRATED_CONFIG
    return AdaptSpec(config=load_transform_config(path), enabled=enabled, config_file=path)


def _label_transform(spec: AdaptSpec | None) -> Any:
    if spec is None:
        return None
    from carla_neural.label_transform import LabelTransform

    return LabelTransform(spec.config)


def _open_backend(run: Run, stack: contextlib.ExitStack) -> None:
    from carla_neural.cpu_split import worker_cpu_options
    from carla_neural.render_client import RenderClient
    from carla_neural.worker_supervisor import WorkerSupervisor

    spec = run.spec.backend
    if spec.in_process:
        from renderer.loading import load_renderer

        if spec.threads is not None:
            import torch

            torch.set_num_threads(spec.threads)
        renderer = load_renderer(spec.checkpoint, engine=spec.engine, device=spec.device)
        if spec.style is not None:
            renderer.apply_style(spec.style)
        run.backend = stack.enter_context(contextlib.closing(InProcessBackend(renderer)))
        run.backend_text = f"in-process renderer ({spec.checkpoint}, {spec.engine})"
        return
    if spec.worker:
        client = RenderClient(spec.worker, style=spec.style)
        run.backend_text = f"worker at {spec.worker}"
    else:
        cpu_options = worker_cpu_options(run.split) or ({"threads": spec.threads} if spec.threads else {})
        run.supervisor = stack.enter_context(WorkerSupervisor(
            spec.checkpoint, engine=spec.engine, device=spec.device, log_path=spec.worker_log, **cpu_options))
        client = run.supervisor.client(style=spec.style)
        run.backend_text = (f"worker process ({spec.checkpoint}, {spec.engine}"
                            f"{'; ' + run.split.describe() if run.split else ''})")
    stack.callback(client.close)
    client.connect()
    run.client = client
    run.backend = ClientBackend(client)


def _open_view(run: Run, stack: contextlib.ExitStack) -> None:
    from carla_neural.display import Display
    from carla_neural.display.live import LiveView

    spec = run.spec.display
    assert spec is not None and run.source is not None
    run.display = stack.enter_context(Display(run.spec.size, title=spec.title.format(source=run.source_text),
                                              headless=spec.headless, autopilot=spec.autopilot))
    run.view = LiveView(run.display, run.source)


def sensors_of(source: Source) -> tuple[str, ...]:
    """The sensors a source yields (semantic at least)."""
    return tuple(source.sensors) or ("semantic",)


def _open_recorder(run: Run) -> Any:
    from carla_neural.recorder import Recorder, RecorderConfig

    spec = run.spec
    assert spec.record is not None and run.source is not None
    sensors = set(sensors_of(run.source))
    videos = ("raw", "labels", "neural") if "rgb" in sensors else ("labels", "neural")
    png_kinds = tuple(kind for kind, sensor in _PNG_SENSORS.items()
                      if spec.record.png and (sensor is None or sensor in sensors))
    info = {
        "command": spec.command,
        "source": run.source_text,
        "size": list(spec.size),
        "tag_scheme": run.source.tag_scheme,
        "mode": spec.mode,
        "frames_requested": run.total_frames,
        "renderer": run.backend_text,
        **run.renderer_facts(),
        "cpu_split": run.split.describe() if run.split else None,
        "worker": dict(run.client.facts) if run.client is not None else {},
        "label_transform": spec.adapt.facts() if spec.adapt is not None else {"enabled": False},
        **dict(spec.run_info),
    }
    return Recorder(spec.record.out_dir, RecorderConfig(fps=1.0 / run.step_s, videos=videos, png=png_kinds),
                    run_info=info)


def source_step_s(source: Source, default_s: float) -> float:
    """Simulated seconds per frame of an open source: the built-in world's fixed step, a replay's
    recorded rate, else `default_s` (CARLA's fixed_delta_s)."""
    from carla_neural.sources.world import builtin

    if isinstance(source, ReplaySource):
        return 1.0 / source.fps
    if isinstance(source, builtin.BuiltinWorld):
        if abs(default_s - builtin.FIXED_DELTA_S) > 1e-9:
            log.warning("the built-in world steps %.3f s per frame, not the scenario's %.3f s",
                        builtin.FIXED_DELTA_S, default_s)
        return builtin.FIXED_DELTA_S
    return default_s


@contextlib.contextmanager
def open_source(spec: SourceSpec) -> Iterator[tuple[Source, str]]:
    """The source a spec names, closed on exit; yields (source, a one-line description)."""
    source: Source
    if spec.kind == "carla":
        from carla_neural.sources.carla_source import CarlaSource

        assert spec.carla is not None
        source = CarlaSource(spec.carla)
        carla = spec.carla
        text = (f"carla {carla.host}:{carla.port} (client {source.client_version}, server "
                f"{source.server_version}, map {source.map_name.rsplit('/', 1)[-1]})")
    elif spec.kind == "builtin":
        from carla_neural.sources.world import BuiltinWorld

        assert spec.world is not None
        source = BuiltinWorld(spec.world)
        config = spec.world
        text = (f"builtin world ({config.layout}, seed {config.seed}, {config.weather}, "
                f"{config.vehicles} vehicles, {config.walkers} walkers)")
    else:
        assert spec.replay_dir is not None
        source = ReplaySource(spec.replay_dir)
        text = f"replay of {spec.replay_dir} ({len(source)} frames)"
    with source:
        yield source, text


# The demo's camera: the mount fitted to Cityscapes' viewpoint (domain_adapt/fit_mount.py), where
# the street models' real video was filmed and the adapted model's maps were recorded.
DEMO_MOUNT = "cityscapes"


def demo_world(width: int, height: int, seed: int, flow: bool = False, mount: str = DEMO_MOUNT) -> SourceSpec:
    """The demo's built-in world: only the sensors it shows and records (no depth; flow for PNGs);
    ValueError naming the field for a bad `mount`."""
    from carla_neural.sources.world import WorldConfig

    sensors = ("semantic", "instance", "rgb") + (("flow",) if flow else ())
    return SourceSpec("builtin", world=WorldConfig(width=width, height=height, seed=seed, sensors=sensors,
                                                   mount=mount))
