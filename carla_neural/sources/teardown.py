"""Undo steps that always run: last registered first, each even when another fails or Ctrl-C lands.

A CARLA session changes the server (synchronous mode, spawned actors) and must put it back
whatever happens in the client. Each setup step registers its undo right after it succeeds, so
a failure half-way through setup undoes exactly what was done.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class TeardownFailure:
    """One undo step that raised."""

    step: str
    error: BaseException


class Teardown:
    """A stack of named undo callables, run once, newest first, all of them whatever happens."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
        self.failures: list[TeardownFailure] = []

    def add(self, step: str, undo: Callable[..., Any], *args: Any) -> None:
        """Register `undo(*args)` under a name that says what it puts back."""
        self._steps.append((step, undo, args))

    def __len__(self) -> int:
        return len(self._steps)

    def run(self) -> list[TeardownFailure]:
        """Run every pending step, newest first; return the failures (also logged).

        Ctrl-C during the run is held back until every step has run, then re-raised as
        KeyboardInterrupt; a second run does nothing.
        """
        interrupted = False
        with _sigint_deferred() as deferred:
            while self._steps:
                step, undo, args = self._steps.pop()
                try:
                    undo(*args)
                    log.debug("teardown: %s", step)
                except KeyboardInterrupt as error:
                    interrupted = True
                    self.failures.append(TeardownFailure(step, error))
                    log.warning("teardown: %s interrupted; continuing with the rest", step)
                except Exception as error:  # every step must run; report, don't stop
                    self.failures.append(TeardownFailure(step, error))
                    log.error("teardown: could not %s: %s", step, error)
        if interrupted or deferred.received:
            raise KeyboardInterrupt
        return self.failures


class _Deferred:
    received = False


class _sigint_deferred:
    """Hold SIGINT while cleaning up (main thread only; elsewhere Python delivers none)."""

    def __enter__(self) -> _Deferred:
        self.state = _Deferred()
        self.previous = None
        if threading.current_thread() is threading.main_thread():

            def remember(signum: int, frame: object) -> None:
                self.state.received = True
                log.warning("Ctrl-C received during cleanup; finishing cleanup first")

            self.previous = signal.signal(signal.SIGINT, remember)
        return self.state

    def __exit__(self, *exc_info: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
