"""docker/compose.yaml: the services as documented (CARLA, worker, client, and the Ray cluster of
the sweep profile), and `docker compose config` accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = DOCKER / "compose.yaml"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _gpu_reserved(service: dict) -> bool:
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    return any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)


def test_three_services_and_the_sweep_profile(services: dict) -> None:
    assert set(services) == {"carla", "worker", "client", "ray-head", "ray-carla-node", "sweep"}
    assert {name for name, service in services.items() if "sweep" in service.get("profiles", [])} == {
        "ray-head", "ray-carla-node", "sweep"}


def test_ray_head_and_a_worker_node_next_to_carla(services: dict) -> None:
    head, node, driver = services["ray-head"], services["ray-carla-node"], services["sweep"]
    assert head["entrypoint"] == ["ray"] and head["command"][:2] == ["start", "--head"]
    assert "ports" not in head and "ports" not in node  # reached by name on the compose network only
    assert "--address=ray-head:6379" in node["command"]
    assert '--resources={"carla_server": 1}' in node["command"]
    assert node["environment"]["CARLA_HOST"] == "carla" and node["depends_on"]["carla"]["condition"] == "service_healthy"
    assert driver["command"][0] == "sweep"
    assert driver["command"][driver["command"].index("--ray-address") + 1] == "ray-head:6379"
    for service in (head, node, driver):
        assert service["environment"]["RAY_AUTH_MODE"] == "token"
        assert service["environment"]["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN")
        assert "../runs:/runs" in service["volumes"]  # the sweep folder at one path on every node


def test_carla_server_runs_offscreen_on_a_gpu_with_rpc_and_streaming_ports(services: dict) -> None:
    carla = services["carla"]
    assert carla["image"] == "carlasim/carla:0.9.16"
    assert "./CarlaUE4.sh" in carla["command"] and "-RenderOffScreen" in carla["command"]
    assert _gpu_reserved(carla)
    assert carla["ports"] == ["127.0.0.1:2000-2001:2000-2001"]


def test_worker_binds_all_interfaces_inside_and_loopback_outside(services: dict) -> None:
    worker = services["worker"]
    command = worker["command"]
    assert command[command.index("--bind") + 1] == "tcp://0.0.0.0:5555"
    assert "--allow-remote" in command
    assert all(port.startswith("127.0.0.1:") for port in worker["ports"])
    assert _gpu_reserved(worker)
    assert worker["build"]["dockerfile"] == "docker/worker.Dockerfile"


def test_client_waits_for_the_server_and_reaches_services_by_name(services: dict) -> None:
    client = services["client"]
    assert client["depends_on"]["carla"]["condition"] == "service_healthy"
    command = client["command"]
    assert command[0] == "record"
    assert command[command.index("--host") + 1] == "carla"
    assert command[command.index("--worker") + 1] == "tcp://worker:5555"
    assert "deploy" not in client  # the client needs no GPU


def test_images_are_built_from_files_that_exist_and_use_tensorrt(services: dict) -> None:
    for name in ("worker", "client"):
        dockerfile = DOCKER.parent / services[name]["build"]["dockerfile"]
        assert dockerfile.is_file()
        assert (dockerfile.parent / (dockerfile.name + ".dockerignore")).is_file()
    worker_dockerfile = (DOCKER / "worker.Dockerfile").read_text()
    assert "nvidia/cuda:" in worker_dockerfile and "tensorrt" in worker_dockerfile
    assert "USER worker" in worker_dockerfile


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _compose_plugin(), reason="needs the docker CLI with the compose plugin (v2)")
@pytest.mark.parametrize("profile", [[], ["--profile", "sweep"]], ids=["default", "sweep-profile"])
def test_docker_compose_config_accepts_the_file(profile: list[str]) -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), *profile, "config", "--quiet"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
