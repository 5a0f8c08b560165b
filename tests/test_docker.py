"""The Dockerfile and compose.yaml, built and started for real where a Docker engine runs.

Where ``docker info`` fails (no engine, or no client) the live test skips, saying why; the
checks of what the files promise an operator (a non-root user, the health check, PostgreSQL
16 with a volume, the server waiting for it) run everywhere.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"


def _docker_unavailable() -> str | None:
    """Why the live test cannot run here, or None."""
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine: `docker info` failed ({reason})"
    if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode != 0:
        return "the Docker engine runs, but the compose plugin is missing (`docker compose version` failed)"
    return None


def _run(
    args: list[str], *, env: dict[str, str], timeout: float, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def _wait_for(url: str, seconds: float) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer 200 within {seconds} s")
        time.sleep(0.5)


@pytest.mark.slow
def test_compose_builds_and_serves_on_postgresql():
    """Build the image, start opensupp and PostgreSQL, create a key inside the container and
    use it from the host; then remove the containers, the volume and the image."""
    reason = _docker_unavailable()
    if reason is not None:
        pytest.skip(reason)
    project = f"opensupp-test-{secrets.token_hex(4)}"
    image = f"{project}:latest"
    port = free_port()
    env = {**os.environ, "OPENSUPP_PORT": str(port), "OPENSUPP_IMAGE": image,
           "POSTGRES_PASSWORD": secrets.token_hex(12)}
    compose = ["docker", "compose", "--file", str(COMPOSE), "--project-name", project]
    url = f"http://127.0.0.1:{port}"
    try:
        _run([*compose, "build"], env=env, timeout=1800)
        # --wait: until PostgreSQL's health check and then opensupp's (its HEALTHCHECK) pass
        _run([*compose, "up", "--detach", "--wait", "--wait-timeout", "240"], env=env, timeout=300)
        assert _wait_for(url + "/healthz", 60).json() == {"status": "ok"}
        assert _wait_for(url + "/readyz", 60).json() == {"status": "ok"}

        created = _run([*compose, "exec", "-T", "opensupp", "opensupp", "keys", "create", "--name", "docker-test"],
                       env=env, timeout=120)
        key = created.stdout.strip().splitlines()[-1]
        assert httpx.get(url + "/test", headers={"apiKey": key}).json() == {"success": True}
        assert httpx.get(url + "/test", headers={"apiKey": "wrong"}).status_code == 401
        account = httpx.post(url + "/accounts/create", json={"title": "Docker", "lang": "en"},
                             headers={"apiKey": key}).json()
        got = httpx.get(f"{url}/accounts/{account['id']}/get", headers={"apiKey": key}).json()
        assert got["title"] == "Docker"

        def inside(*command: str) -> str:
            return _run([*compose, "exec", "-T", "opensupp", *command], env=env, timeout=60).stdout.strip()

        assert inside("id", "-u") != "0"
        assert inside("python", "-c", "from opensupp.triggers import plan; print(plan.COMPILED)") == "True"
        assert inside("printenv", "OPENSUPP_DATABASE_URL").startswith("postgresql://opensupp:")
        container = _run([*compose, "ps", "--quiet", "opensupp"], env=env, timeout=60).stdout.strip()
        health = _run(["docker", "inspect", "--format", "{{.State.Health.Status}}", container], env=env, timeout=60)
        assert health.stdout.strip() == "healthy"
        logs = _run([*compose, "logs", "opensupp"], env=env, timeout=60).stdout
        assert "Traceback" not in logs
    finally:
        _run([*compose, "down", "--volumes", "--remove-orphans"], env=env, timeout=300, check=False)
        _run(["docker", "image", "rm", "--force", image], env=env, timeout=120, check=False)


# --------------------------------------------------------------------------- what the files say


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (keyword, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def test_dockerfile_builds_in_one_stage_and_runs_in_a_slim_non_root_one():
    steps = _instructions()
    stages = [args for keyword, args in steps if keyword == "FROM"]
    assert len(stages) == 2 and " AS build" in stages[0] and "slim" in stages[1]
    runtime = steps[[keyword for keyword, _ in steps].index("FROM", 1):]
    build = steps[:len(steps) - len(runtime)]
    assert any(keyword == "RUN" and "build-essential" in args for keyword, args in build)  # a C compiler
    assert not any("build-essential" in args for _, args in runtime)
    # the SDK first, then the server
    wheel = next(args for keyword, args in build if keyword == "RUN" and "pip wheel" in args)
    assert wheel.index("./client") < wheel.rindex(" .")
    user = [args for keyword, args in runtime if keyword == "USER"]
    assert user and user[-1] not in ("root", "0")
    health = next(args for keyword, args in runtime if keyword == "HEALTHCHECK")
    assert "/healthz" in health
    assert any(keyword == "VOLUME" and "/data" in args for keyword, args in runtime)
    env = " ".join(args for keyword, args in runtime if keyword == "ENV")
    assert "OPENSUPP_DATA_DIR=/data" in env  # the SQLite default lives in the volume
    command = " ".join(args for keyword, args in runtime if keyword in ("ENTRYPOINT", "CMD"))
    assert re.search(r'"opensupp".*"serve".*"--host", "0\.0\.0\.0"', command)


def test_compose_runs_opensupp_on_a_healthy_postgresql_16():
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    postgres, opensupp = compose["services"]["postgres"], compose["services"]["opensupp"]
    assert postgres["image"] == "postgres:16"
    volume = postgres["volumes"][0].split(":")
    assert volume[0] in compose["volumes"] and volume[1] == "/var/lib/postgresql/data"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert opensupp["build"] == "."
    assert opensupp["depends_on"]["postgres"]["condition"] == "service_healthy"
    database = opensupp["environment"]["OPENSUPP_DATABASE_URL"]
    assert database.startswith("postgresql://opensupp:") and "@postgres:5432/opensupp" in database
    assert opensupp["ports"] == ["127.0.0.1:${OPENSUPP_PORT:-8000}:8000"]


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in ("**/.venv", "**/*.db", "**/.env", ".git", "**/*.so"):
        assert pattern in ignored
