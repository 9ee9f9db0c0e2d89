"""The worker binds to loopback unless told otherwise."""

from __future__ import annotations

import logging

import pytest

from renderer.worker import BindRefused, check_bind


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5555", "tcp://localhost:5555", "tcp://[::1]:5555",
                                      "tcp://127.0.0.1:*", "ipc:///tmp/worker.sock"])
def test_loopback_and_local_endpoints_are_accepted(endpoint, caplog):
    with caplog.at_level(logging.WARNING):
        check_bind(endpoint, allow_remote=False)
    assert not caplog.records


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.1.20:5555",
                                      "tcp://eth0:5555"])
def test_other_addresses_need_allow_remote(endpoint, caplog):
    with pytest.raises(BindRefused, match="--allow-remote"):
        check_bind(endpoint, allow_remote=False)
    with caplog.at_level(logging.WARNING):
        check_bind(endpoint, allow_remote=True)
    assert "no authentication" in caplog.text


def test_unknown_transports_are_refused():
    with pytest.raises(BindRefused, match="tcp://HOST:PORT"):
        check_bind("udp://127.0.0.1:5555", allow_remote=True)
