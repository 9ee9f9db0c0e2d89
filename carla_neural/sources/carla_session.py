"""Connect to a CARLA server and change its state in ways that are always undone.

Each function that changes the server registers its undo on a `Teardown`, before the change
where the change can fail half-way, else right after it succeeds. Functions here take the `carla` module or carla objects as arguments, so the
undo bookkeeping is testable without a server; `carla` itself is imported only by
`import_carla()`.
"""

from __future__ import annotations

import logging
import socket
from types import ModuleType
from typing import Any

from carla_neural.sources.teardown import Teardown

log = logging.getLogger(__name__)

CARLA_INSTALL_HINT = (
    "the CARLA client library is not installed; install it with "
    "`pip install 'carla-neural[carla]'` (carla==0.9.16, Linux, Python 3.10-3.12), "
    "or run without a CARLA server: `--world builtin`"
)


class CarlaUnavailable(RuntimeError):
    """The `carla` package cannot be imported."""


class CarlaConnectionError(ConnectionError):
    """No CARLA server answered, or it answered in a way we cannot use."""


def import_carla() -> ModuleType:
    """Import the optional `carla` client library, or raise CarlaUnavailable with the fix."""
    try:
        import carla
    except ImportError as error:
        raise CarlaUnavailable(CARLA_INSTALL_HINT) from error
    return carla


_START_HINT = (
    "`--world builtin` runs without a server; or start one (`docker compose -f docker/compose.yaml up "
    "carla`, or `./CarlaUE4.sh -RenderOffScreen`) and point --host/--port at it."
)


def probe_port(host: str, port: int, timeout_s: float = 1.0) -> None:
    """Raise CarlaConnectionError at once when nothing listens at host:port (refused, or an
    unknown host); a silent or filtered port is left to the client's own timeout."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except ConnectionRefusedError:
        raise CarlaConnectionError(f"no CARLA server at {host}:{port} (connection refused). {_START_HINT}") from None
    except socket.gaierror as error:
        raise CarlaConnectionError(f"cannot resolve the CARLA host {host!r} ({error}). {_START_HINT}") from None
    except OSError:
        pass


def connect(carla: ModuleType, host: str, port: int, timeout_s: float) -> tuple[Any, str, str]:
    """Open a client and check a server answers; return (client, client_version, server_version).

    Raises CarlaConnectionError at once when the port refuses connections, else after `timeout_s`
    when nothing answers at host:port.
    """
    probe_port(host, port, min(timeout_s, 1.0))
    client = carla.Client(host, port, worker_threads=1)
    client.set_timeout(timeout_s)
    try:
        server_version = client.get_server_version()
    except RuntimeError as error:
        raise CarlaConnectionError(
            f"no CARLA server answered at {host}:{port} within {timeout_s:g} s ({error}). {_START_HINT}"
        ) from error
    client_version = client.get_client_version()
    check_versions(client_version, server_version)
    return client, client_version, server_version


def check_versions(client_version: str, server_version: str) -> bool:
    """Log both versions; warn and return False when their release numbers differ."""
    log.info("CARLA client %s, server %s", client_version, server_version)
    if _release(client_version) != _release(server_version):
        log.warning(
            "CARLA client %s and server %s differ: sensor formats and the API may not match; "
            "install the client wheel that matches the server (pip install carla==%s)",
            client_version, server_version, _release(server_version),
        )
        return False
    return True


def _release(version: str) -> str:
    # Builds report e.g. "0.9.16-12-gabcdef-dirty"; only the release number matters here.
    return version.strip().split("-")[0]


def load_map(
    client: Any, map_name: str, request_timeout_s: float, load_timeout_s: float = 120.0
) -> Any:
    """Load `map_name` (e.g. "Town10HD_Opt") unless it is already loaded; return the world.

    Raises ValueError naming the available maps when the server has no such map.
    """
    world = client.get_world()
    current = world.get_map().name.rsplit("/", 1)[-1]
    if current == map_name.rsplit("/", 1)[-1]:
        return world
    available = sorted(path.rsplit("/", 1)[-1] for path in client.get_available_maps())
    if map_name.rsplit("/", 1)[-1] not in available:
        raise ValueError(f"map {map_name!r} is not on this server; available: {', '.join(available)}")
    log.info("loading map %s (was %s)", map_name, current)
    # Loading a town takes longer than an ordinary request.
    client.set_timeout(load_timeout_s)
    try:
        return client.load_world(map_name)
    finally:
        client.set_timeout(request_timeout_s)


MAX_SEED = 2**32 - 1  # World.set_pedestrians_seed takes an unsigned int; the TM seeds a 32-bit mt19937


def check_seed(seed: int) -> int:
    """``seed`` if CARLA can take it (0..2**32-1), else ValueError naming the range."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed {seed!r} is out of range: CARLA's seeds are unsigned 32-bit (0..{MAX_SEED})")
    return seed


def enter_synchronous_mode(
    world: Any, traffic_manager: Any, fixed_delta_s: float, seed: int, teardown: Teardown
) -> None:
    """World in synchronous mode with a fixed step, the Traffic Manager with it and seeded.

    Each undo is registered *before* its change: ``World.apply_settings`` can raise after the
    server has already switched (with ``fixed_delta_seconds`` set it ticks, up to 30 times, until
    the new settings are in effect), and the Traffic Manager can fail half-way the same way. An undo
    that finds nothing changed is harmless; a server left synchronous freezes every other client.
    """
    check_seed(seed)
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode = True
    settings.fixed_delta_seconds = fixed_delta_s
    # Cameras return nothing in no-rendering mode.
    settings.no_rendering_mode = False
    teardown.add("restore the world's original settings", world.apply_settings, original)
    world.apply_settings(settings)
    teardown.add("put the Traffic Manager back in asynchronous mode",
                 traffic_manager.set_synchronous_mode, False)
    traffic_manager.set_synchronous_mode(True)
    traffic_manager.set_random_device_seed(seed)


class SpawnedActors:
    """Every actor this session spawned, destroyed together in one batch at teardown.

    Actors spawned in a batch are known by id only until the next tick makes them visible to
    the client, so the registry keeps ids (what destruction needs) and, where we have them,
    the actor objects (what stopping sensors and walker controllers needs).
    """

    def __init__(self, client: Any, carla: ModuleType) -> None:
        self._client = client
        self._carla = carla
        self._type_ids: dict[int, str] = {}
        self._objects: dict[int, Any] = {}

    def add(self, actor: Any) -> Any:
        """Track a spawned actor object; returns it."""
        self._type_ids[actor.id] = getattr(actor, "type_id", "")
        self._objects[actor.id] = actor
        return actor

    def add_id(self, actor_id: int, type_id: str) -> None:
        """Track an actor spawned in a batch, known only by id so far."""
        self._type_ids[actor_id] = type_id

    def attach(self, actor: Any) -> None:
        """Give the registry the object of an actor tracked by id."""
        if actor.id in self._type_ids:
            self._objects[actor.id] = actor

    def __len__(self) -> int:
        return len(self._type_ids)

    def ids(self, prefix: str = "") -> list[int]:
        """Ids of tracked actors whose type id starts with `prefix`, in spawn order."""
        return [i for i, type_id in self._type_ids.items() if type_id.startswith(prefix)]

    def objects(self, prefix: str) -> list[Any]:
        """Actor objects we hold for tracked actors whose type id starts with `prefix`."""
        return [self._objects[i] for i in self.ids(prefix) if i in self._objects]

    def stop_listening(self) -> None:
        """Stop sensor callbacks and walker controllers (errors per actor are logged)."""
        for sensor in self.objects("sensor."):
            _logged(f"stop sensor {sensor.id}", sensor.stop)
        for controller in self.objects("controller.ai.walker"):
            _logged(f"stop walker controller {controller.id}", controller.stop)

    def destroy(self, actor_ids: list[int] | None = None) -> None:
        """Destroy `actor_ids` (default: all tracked) in one batch: sensors and controllers first."""
        if actor_ids is None:
            actor_ids = list(self._type_ids)
        first = ("sensor.", "controller.")
        actor_ids = sorted(actor_ids, key=lambda i: not self._type_ids.get(i, "").startswith(first))
        if not actor_ids:
            return
        commands = [self._carla.command.DestroyActor(actor_id) for actor_id in actor_ids]
        responses = self._client.apply_batch_sync(commands)
        failed = [r.error for r in responses if getattr(r, "error", "")]
        for actor_id in actor_ids:
            self._type_ids.pop(actor_id, None)
            self._objects.pop(actor_id, None)
        if failed:
            log.warning("could not destroy %d of %d actors: %s", len(failed), len(actor_ids), failed[0])
        log.info("destroyed %d actors", len(actor_ids) - len(failed))

    def stop_and_destroy_all(self) -> None:
        """Stop callbacks, then destroy every tracked actor."""
        self.stop_listening()
        self.destroy()


def _logged(step: str, action: Any) -> None:
    try:
        action()
    except Exception as error:  # one bad actor must not keep the rest alive
        log.warning("could not %s: %s", step, error)
