"""The container and deployment files agree with each other and with the process commands.

Nothing here needs a Docker engine: the files are parsed and compared. `docker compose config`
runs only where the compose plugin is installed, and is skipped elsewhere.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
RAILWAY_DIR = ROOT / "deploy"

WEB = "python -m app.cli serve"
WORKER = (
    "celery -A app.worker.celery_app:celery_app worker --loglevel=${LOG_LEVEL:-INFO} "
    "--concurrency=${WORKER_CONCURRENCY:-2}"
)
BEAT = (
    # --quiet: beat's banner is plain text printed before logging is set up.
    "celery -A app.worker.celery_app:celery_app --quiet beat --loglevel=${LOG_LEVEL:-INFO} "
    "--schedule /tmp/celerybeat-schedule"
)
MIGRATE = "python -m app.cli db migrate"

APP_SERVICES = ("migrate", "web", "worker", "beat")


def argv(command: str | list[str]) -> list[str]:
    """The program and arguments a command runs, seen through `sh -c "exec ..."`."""
    tokens = shlex.split(command) if isinstance(command, str) else list(command)
    if len(tokens) == 3 and tokens[0] in ("sh", "/bin/sh") and tokens[1] == "-c":
        tokens = shlex.split(tokens[2])
    if tokens and tokens[0] == "exec":
        tokens = tokens[1:]
    return tokens


def compose_argv(command: str | list[str]) -> list[str]:
    """Like argv, after undoing compose's `$$` escape (a `$` left for the container's shell)."""
    if isinstance(command, str):
        return argv(command.replace("$$", "$"))
    return argv([part.replace("$$", "$") for part in command])


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def railway(name: str) -> dict[str, Any]:
    with (RAILWAY_DIR / f"railway.{name}.toml").open("rb") as handle:
        return tomllib.load(handle)


# --- docker-compose.yml -----------------------------------------------------------------------


def test_compose_has_every_service(services: dict[str, Any]) -> None:
    assert {"postgres", "redis", *APP_SERVICES} <= set(services)


def test_compose_app_services_share_one_image(services: dict[str, Any]) -> None:
    images = {
        json.dumps([services[name].get("build"), services[name].get("image")])
        for name in APP_SERVICES
    }
    assert len(images) == 1, images
    build, image = json.loads(images.pop())
    assert build is not None and image


@pytest.mark.parametrize(
    ("service", "command"), [("web", WEB), ("worker", WORKER), ("beat", BEAT), ("migrate", MIGRATE)]
)
def test_compose_commands(services: dict[str, Any], service: str, command: str) -> None:
    assert compose_argv(services[service]["command"]) == argv(command)


@pytest.mark.parametrize("service", ["web", "worker", "beat"])
def test_compose_app_waits_for_migrations(services: dict[str, Any], service: str) -> None:
    depends_on = services[service]["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_compose_migrate_waits_for_postgres(services: dict[str, Any]) -> None:
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"].get("restart", "no") == "no"


def test_compose_data_services(services: dict[str, Any]) -> None:
    postgres, redis = services["postgres"], services["redis"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in str(postgres["healthcheck"]["test"])
    assert postgres["volumes"]
    assert redis["image"].startswith("redis:7")
    assert "ping" in str(redis["healthcheck"]["test"])


def test_compose_web_is_published_and_checks_readiness(services: dict[str, Any]) -> None:
    web = services["web"]
    assert any(str(port).endswith("8000") for port in web["ports"])
    assert "/readyz" in str(web["healthcheck"]["test"])


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_app_environment(services: dict[str, Any], service: str) -> None:
    config = services[service]
    env_files = config["env_file"]
    paths = [item if isinstance(item, str) else item["path"] for item in env_files]
    assert ".env" in paths
    environment = config["environment"]
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("redis://redis:6379")
    assert environment["ENVIRONMENT"] == "${ENVIRONMENT:-development}"


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI not installed")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    instructions = dockerfile_instructions()
    bases = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(bases) >= 2
    args = dict(
        rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest
    )
    resolved = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), b) for b in bases]
    assert any(base.startswith("python:3.11-slim") for base in resolved), resolved


def test_dockerfile_installs_the_lock_with_uv() -> None:
    runs = [rest for keyword, rest in dockerfile_instructions() if keyword == "RUN"]
    sync = [run for run in runs if "uv sync" in run]
    assert sync, "no `uv sync` step"
    assert all("--frozen" in run and "--no-dev" in run for run in sync)
    assert any("--mount=type=cache" in run for run in sync)


def test_dockerfile_copies_code_after_dependencies() -> None:
    instructions = dockerfile_instructions()
    copies = [rest for keyword, rest in instructions if keyword == "COPY"]
    venv = next(i for i, rest in enumerate(copies) if "/app/.venv" in rest)
    code = next(i for i, rest in enumerate(copies) if rest.split()[0] == "app")
    assert venv < code


def test_dockerfile_runs_as_non_root_with_the_venv_on_path() -> None:
    instructions = dockerfile_instructions()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] not in ("root", "0")
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert re.search(r'PATH="?/app/\.venv/bin:', env)


def test_dockerfile_default_command_is_web() -> None:
    instructions = dockerfile_instructions()
    cmd = [rest for keyword, rest in instructions if keyword == "CMD"][-1]
    assert argv(json.loads(cmd)) == argv(WEB)
    healthcheck = [rest for keyword, rest in instructions if keyword == "HEALTHCHECK"]
    assert all("/healthz" in rest for rest in healthcheck)
    # The check recognises the web process by its command line (NUL-separated in /proc).
    marker = "\\\\x00".join(argv(WEB)[2:])
    assert healthcheck and all(marker in rest for rest in healthcheck)


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".data", ".git", ".env", "__pycache__", ".pytest_cache"} <= patterns


# --- Railway ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "command"), [("web", WEB), ("worker", WORKER), ("beat", BEAT)])
def test_railway_service(name: str, command: str) -> None:
    config = railway(name)
    assert config["build"]["builder"] == "DOCKERFILE"
    assert (ROOT / config["build"]["dockerfilePath"]).is_file()
    deploy = config["deploy"]
    assert argv(deploy["startCommand"]) == argv(command)
    assert deploy["restartPolicyType"] in {"ON_FAILURE", "ALWAYS", "NEVER"}


def test_railway_web_migrates_and_checks_readiness() -> None:
    deploy = railway("web")["deploy"]
    pre_deploy = deploy["preDeployCommand"]
    if isinstance(pre_deploy, list) and len(pre_deploy) == 1:
        pre_deploy = pre_deploy[0]
    assert argv(pre_deploy) == argv(MIGRATE)
    assert deploy["healthcheckPath"] == "/readyz"
    assert deploy["healthcheckTimeout"] > 0


def test_railway_beat_runs_once() -> None:
    assert railway("beat")["deploy"].get("numReplicas", 1) == 1


# --- .env.example -----------------------------------------------------------------------------

ENV_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def env_example() -> dict[str, tuple[bool, str]]:
    """NAME -> (active, value); commented-out `# NAME=value` lines count as documented."""
    entries: dict[str, tuple[bool, str]] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = ENV_LINE.match(line.strip())
        if match:
            commented, name, value = match.groups()
            assert name not in entries, f"{name} appears twice in .env.example"
            entries[name] = (commented is None, value)
    return entries


def test_env_example_names_every_setting() -> None:
    documented = set(env_example())
    settings = {name.upper() for name in Settings.model_fields}
    assert not settings - documented, f"missing from .env.example: {sorted(settings - documented)}"


def test_env_example_defaults_to_development() -> None:
    assert env_example()["ENVIRONMENT"] == (True, "development")


def test_env_example_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=ENV_EXAMPLE)
    assert settings.environment == "development"
    assert settings.database_url is None and settings.redis_url is None
