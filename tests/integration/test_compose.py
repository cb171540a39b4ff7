"""The deployment files, checked without a Docker engine or a Kubernetes cluster.

- docker-compose.yaml: interpolated the way Compose does it (from .env.example),
  validated against the current Compose Specification JSON schema
  (../shared/reference/compose/; skipped with the reason without it), its
  durations and port specs read as Compose reads them, then its services,
  images, mounts, environment, connections, health checks and start order
  asserted.
- Dockerfile and .dockerignore: the Airflow and Python versions match
  requirements.txt and pyproject.toml; the pinned requirements and the package
  are installed at build time; everything the build copies is in the context.
- The compose stack's helpers run for real: the PostgreSQL init script on this
  machine's server, the SendGrid double with the real SendGrid client,
  make_env.py writing a .env.
- deploy/helm/values.yaml: tests/integration/test_helm_values.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
# The current Compose Specification schema: test data in ../shared (the tests skip without it).
COMPOSE_SCHEMA = REPO.parent / "shared" / "reference" / "compose" / "compose-spec.json"
# Airflow's Celery settings with the worker warm start (metaudit.pipeline.celery_config).
CELERY_CONFIG_OPTIONS = "metaudit.pipeline.celery_config.CELERY_CONFIG"
POSTGRES_HOST = os.environ.get("METAUDIT_TEST_PG_HOST", "127.0.0.1")

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
ONE_SHOT_SERVICES = {"airflow-init", "metaudit-demo"}
OPTIONAL_PROFILES = {"airflow-cli", "flower"}


# -- Compose interpolation (what `docker compose` does before it validates) --------------------

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>.*))?", re.DOTALL)


class MissingVariableError(ValueError):
    """A ${VAR:?message} whose variable is unset or empty: Compose refuses the file."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """One string with $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err},
    ${VAR?err} and $$ resolved the way the Compose Specification defines them."""

    def resolve(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        parts = _BRACED.fullmatch(match["braced"])
        if parts is None:
            raise ValueError(f"invalid interpolation: ${{{match['braced']}}}")
        name, op, arg = parts["name"], parts["op"], parts["arg"] or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op == ":?" and not value:
            raise MissingVariableError(f"{name}: {arg}")
        if op == "?" and value is None:
            raise MissingVariableError(f"{name}: {arg}")
        return value or ""

    return _VARIABLE.sub(resolve, text)


def interpolated(node: Any, env: dict[str, str]) -> Any:
    """The document with every string value interpolated (keys are not, as in Compose)."""
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an .env file (comments and blank lines skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    """docker-compose.yaml as Compose sees it with the variables of .env.example."""
    return interpolated(raw_compose, read_env_file(ENV_EXAMPLE))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment is written as a mapping"
    return {k: str(v) for k, v in environment.items()}


# -- schema ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    """The current Compose Specification schema (../shared/reference/compose/), as test data."""
    if not COMPOSE_SCHEMA.is_file():
        pytest.skip(f"the Compose Specification schema is not here ({COMPOSE_SCHEMA} absent)")
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    # It names draft-07 by an https address jsonschema does not know: choose draft-07 here.
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


# The schema types durations and port specs as plain strings (Compose parses them when it
# loads the file): checked here the way Compose reads them, Go durations ("30s", "1m30s").
_GO_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")
_PORT = re.compile(
    r"((\[[0-9a-fA-F:.]+\]|[0-9.]+|[\w.-]+):)?(\d+(-\d+)?:)?\d+(-\d+)?(/(tcp|udp|sctp))?"
)
_EXPOSE = re.compile(r"\d+(-\d+)?(/(tcp|udp|sctp))?")
_DURATIONS = ("interval", "timeout", "start_period", "start_interval")


def compose_value_errors(compose: dict[str, Any]) -> list[str]:
    """Durations and port specs of every service that Compose would refuse."""
    errors = []
    for name, service in compose["services"].items():
        check = service.get("healthcheck") or {}
        durations = {f"healthcheck.{k}": check[k] for k in _DURATIONS if k in check}
        if "stop_grace_period" in service:
            durations["stop_grace_period"] = service["stop_grace_period"]
        for key, value in durations.items():
            if not _GO_DURATION.fullmatch(str(value)):
                errors.append(f"services.{name}.{key}: {value!r} is not a duration")
        for key, pattern in (("ports", _PORT), ("expose", _EXPOSE)):
            for value in service.get(key, []):
                if isinstance(value, str | int) and not pattern.fullmatch(str(value)):
                    errors.append(f"services.{name}.{key}: {value!r} is not a port spec")
    return errors


def test_compose_file_is_valid_against_the_compose_specification(compose, compose_validator):
    errors = sorted(compose_validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_compose_durations_and_ports_read_as_compose_reads_them(compose):
    assert compose_value_errors(compose) == []


def test_schema_check_catches_mistakes(compose, compose_validator):
    broken = json.loads(json.dumps(compose))
    worker = broken["services"]["airflow-worker"]
    worker["depends_on"]["redis"]["condition"] = "service_ready"  # not a Compose condition
    worker["healthcheck"]["interval"] = "thirty seconds"
    worker["deploy"]["resources"] = {"limits": {"memroy": "4g"}}  # misspelt key
    broken["services"]["postgres"]["restart_policy"] = "always"  # not a service key
    broken["services"]["redis"]["ports"] = ["6379:6379:tcp"]
    messages = {e.message for e in compose_validator.iter_errors(broken)}
    assert any("service_ready" in m for m in messages)
    assert any("restart_policy" in m for m in messages)
    assert any("memroy" in m for m in messages)
    values = "\n".join(compose_value_errors(broken))
    assert "airflow-worker.healthcheck.interval: 'thirty seconds'" in values
    assert "redis.ports: '6379:6379:tcp'" in values


def test_every_secret_is_required_and_listed_in_env_example(raw_compose):
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    example = read_env_file(ENV_EXAMPLE)
    assert used <= set(example), f"not in .env.example: {sorted(used - set(example))}"
    # Without a .env, Compose refuses to start instead of running with empty secrets.
    with pytest.raises(MissingVariableError):
        interpolated(raw_compose, {})
    for secret in (
        "POSTGRES_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_ADMIN_PASSWORD",
        "MET_PRACTICE_DB_PASSWORD",
        "MET_RESULTS_DB_PASSWORD",
        "METAUDIT_PACKET_KEY",
        "SENDGRID_API_KEY",
    ):
        assert re.search(rf"\$\{{{secret}:\?", text), (
            f"{secret} is not required (${{{secret}:?...}})"
        )
        assert example[secret] == "change-me", f"{secret} in .env.example must be a placeholder"
    gitignore = (REPO / ".gitignore").read_text().split()
    assert ".env" in gitignore and "/data/" in gitignore


# -- services, images, commands -----------------------------------------------------------------


def test_services_follow_airflows_official_compose_shape(raw_compose, services):
    assert "x-airflow-common" in raw_compose
    assert set(AIRFLOW_SERVICES) | ONE_SHOT_SERVICES | OPTIONAL_PROFILES | {
        "postgres",
        "redis",
        "sendgrid-double",
    } == set(services)
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command, name
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:7.2")
    for name in OPTIONAL_PROFILES:
        assert services[name]["profiles"], f"{name} starts only with its profile"


def test_airflow_services_run_our_image_built_from_the_dockerfile(raw_compose, services):
    common = raw_compose["x-airflow-common"]
    assert common["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert not common["image"].startswith("${AIRFLOW_IMAGE_NAME:-apache/airflow")
    image = services["airflow-scheduler"]["image"]
    assert image == "metaudit-airflow:0.1.0"
    for name in [*AIRFLOW_SERVICES, *ONE_SHOT_SERVICES, *OPTIONAL_PROFILES]:
        assert services[name]["image"] == image, name
        assert services[name]["build"]["dockerfile"] == "Dockerfile", name
    for name, service in services.items():
        environment = env_of(service)
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in environment, f"{name} installs at start"


def test_worker_is_the_scalable_service(services):
    worker = services["airflow-worker"]
    assert worker["deploy"]["replicas"] >= 2
    # `--scale` needs containers without fixed names or host ports.
    assert "container_name" not in worker and "ports" not in worker
    assert env_of(worker)["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "2"


# -- environment and connections --------------------------------------------------------------


def test_environment_configures_celery_postgres_and_redis(services):
    env = env_of(services["airflow-worker"])
    password = read_env_file(ENV_EXAMPLE)["POSTGRES_PASSWORD"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    metadata = f"postgresql+psycopg://airflow:{password}@postgres/airflow"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == metadata
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] == metadata
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{metadata}"
    assert (
        env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        and "@redis:6379/" in env["AIRFLOW__CELERY__BROKER_URL"]
    )
    assert (
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    )
    for key in (
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
    ):
        assert env[key], key
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == CELERY_CONFIG_OPTIONS
    # Every Airflow component shares one configuration (the x-airflow-common anchor).
    for name in AIRFLOW_SERVICES:
        shared = {k: v for k, v in env_of(services[name]).items() if k.startswith("AIRFLOW")}
        assert (
            shared.items() >= {k: v for k, v in env.items() if k.startswith("AIRFLOW")}.items()
        ), name


def _connection(env: dict[str, str], conn_id: str) -> Any:
    from airflow.models.connection import Connection

    return Connection.from_json(env[f"AIRFLOW_CONN_{conn_id.upper()}"], conn_id=conn_id)


def test_connections_point_at_the_compose_services(services):
    from metaudit.pipeline.connections import sqlalchemy_url_from_connection

    env = env_of(services["airflow-worker"])
    secrets = read_env_file(ENV_EXAMPLE)
    practice = sqlalchemy_url_from_connection(_connection(env, "met_practice_db"))
    assert practice == (
        f"postgresql+psycopg://met_practice:{secrets['MET_PRACTICE_DB_PASSWORD']}@postgres:5432/met_practice"
    )
    results = sqlalchemy_url_from_connection(_connection(env, "met_results_db"))
    assert results == (
        f"postgresql+psycopg://met_results:{secrets['MET_RESULTS_DB_PASSWORD']}@postgres:5432/met_results"
    )
    sendgrid = _connection(env, "sendgrid_default")
    assert sendgrid.password == secrets["SENDGRID_API_KEY"]
    assert sendgrid.host == "http://sendgrid-double:3030"
    double = services["sendgrid-double"]
    assert double["command"][double["command"].index("--port") + 1] == "3030"
    assert env_of(double)["SENDGRID_DOUBLE_API_KEY"] == secrets["SENDGRID_API_KEY"]
    # The demo job writes the database the source connection reads.
    assert "@postgres:5432/met_practice" in services["metaudit-demo"]["command"][1]
    assert (
        "met_practice:$${MET_PRACTICE_DB_PASSWORD}"
        in yaml.safe_load(COMPOSE_FILE.read_text())["services"]["metaudit-demo"]["command"][1]
    )


# -- mounts and import path ---------------------------------------------------------------------


def _binds(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host source of a service's short-syntax volumes."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


def test_mounts_bring_the_project_into_every_airflow_container(compose, services):
    expected = {
        "/opt/airflow/dags": "./dags",
        "/opt/airflow/plugins": "./plugins",
        "/opt/airflow/include": "./include",
        "/opt/airflow/config": "./deploy/compose/config",
        "/opt/airflow/data": "./data/compose",
    }
    for name in [*AIRFLOW_SERVICES, *ONE_SHOT_SERVICES]:
        mounts = _binds(services[name])
        assert mounts.items() >= expected.items(), name
        env = env_of(services[name])
        # include/ is not on Airflow's sys.path: PYTHONPATH names the mounted folder.
        assert env["PYTHONPATH"].split(":")[0] == "/opt/airflow/include"
        assert env["METAUDIT_DATA_DIR"] in mounts
        # The suites come with the mounted package (package data): nothing to point at.
        assert "METAUDIT_EXPECTATIONS_DIR" not in env
        assert Path(env["METAUDIT_CONFIG"]).parent.as_posix() in mounts
    for source in expected.values():
        if source != "./data/compose":  # made on first start; git-ignored
            assert (REPO / source).is_dir(), f"{source} is mounted but missing"
    named = {s for svc in services.values() for s in _binds(svc).values() if not s.startswith(".")}
    assert named <= set(compose["volumes"]), "every named volume is declared"


def test_compose_metaudit_config_is_a_valid_configuration(services):
    from metaudit.mail.config import load_mail_config
    from metaudit.spec.settings import Settings

    config = (
        REPO
        / "deploy"
        / "compose"
        / "config"
        / Path(env_of(services["airflow-worker"])["METAUDIT_CONFIG"]).name
    )
    settings = Settings.load(config)
    mail = load_mail_config(settings)
    assert mail.sender and mail.admins
    assert set(mail.practices) == {"PR0001", "PR0002", "PR0003"}


# -- health checks and start order ---------------------------------------------------------------


def test_long_running_services_have_health_checks(services):
    for name, service in services.items():
        if name in ONE_SHOT_SERVICES or name == "airflow-cli":
            assert "healthcheck" not in service and service.get("restart", "no") == "no", name
            continue
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check["interval"] and check["retries"] >= 3, name
        assert service["restart"] == "always", name
    assert "8974/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(services["airflow-worker"]["healthcheck"]["test"])
    assert (
        env_of(services["airflow-scheduler"])["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    )


def test_start_order_uses_conditions_and_has_no_cycle(services):
    healthy, done = "service_healthy", "service_completed_successfully"
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == healthy, name
        assert deps["redis"]["condition"] == healthy, name
        assert deps["airflow-init"]["condition"] == done, name
    worker = services["airflow-worker"]["depends_on"]
    assert worker["airflow-apiserver"]["condition"] == healthy
    assert worker["metaudit-demo"]["condition"] == done
    assert worker["sendgrid-double"]["condition"] == healthy
    # Conditions only on services that can meet them.
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if spec["condition"] == healthy:
                assert "healthcheck" in services[dep], (
                    f"{name} waits for {dep}, which has no health check"
                )
            if spec["condition"] == done:
                assert dep in ONE_SHOT_SERVICES, f"{name} waits for {dep} to exit"
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, f"dependency cycle through {name}"
        if name in order:
            return
        visiting.add(name)
        for dep in services[name].get("depends_on", {}):
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in services:
        visit(name)
    assert order.index("airflow-init") < order.index("airflow-scheduler")


# -- Dockerfile and build context -----------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def pinned(requirement: str) -> str:
    match = re.search(
        rf"^{re.escape(requirement)}==(\S+)$", (REPO / "requirements.txt").read_text(), re.M | re.I
    )
    assert match, f"{requirement} is not pinned in requirements.txt"
    return match[1]


def test_dockerfile_extends_the_official_image_of_our_pinned_airflow():
    steps = dockerfile_instructions()
    airflow = pinned("apache-airflow")
    froms = [args for op, args in steps if op == "FROM"]
    assert froms == [f"apache/airflow:{airflow}-python3.11"]
    requires = re.search(r'requires-python = "([^"]+)"', (REPO / "pyproject.toml").read_text())
    assert requires and ">=3.11" in requires[1] and "<3.12" in requires[1]
    assert ("ARG", f"AIRFLOW_VERSION={airflow}") in steps


def test_dockerfile_installs_pinned_requirements_and_the_package_at_build_time():
    steps = dockerfile_instructions()
    text = [f"{op} {args}" for op, args in steps]
    copy_reqs = text.index("COPY --chown=airflow:0 requirements.txt /opt/metaudit/requirements.txt")
    install = next(i for i, t in enumerate(text) if t.startswith("RUN pip install") and "-r " in t)
    assert copy_reqs < install
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in text[install]
    assert "-r /opt/metaudit/requirements.txt" in text[install]
    copy_pkg = text.index("COPY --chown=airflow:0 include/ /opt/metaudit/include/")
    install_pkg = text.index("RUN pip install --no-cache-dir --no-deps /opt/metaudit")
    assert copy_reqs < install < copy_pkg < install_pkg
    env = " ".join(args for op, args in steps if op == "ENV")
    # The suites are package data: installed with the package, no folder or variable.
    assert "METAUDIT_DATA_DIR=/opt/airflow/data" in env
    assert "EXPECTATIONS" not in env
    assert not any("expectations" in args for op, args in steps if op == "COPY")
    assert not any("_PIP_ADDITIONAL_REQUIREMENTS" in args for _, args in steps)


def test_requirements_pin_the_celery_stack_the_celery_test_ran_with():
    """The image gets Celery from requirements.txt, so it must pin the provider and a celery
    that imports with it (provider 3.26.0 fails with celery 5.7.0), as installed here."""
    from importlib.metadata import version

    for name in ("apache-airflow-providers-celery", "celery", "kombu", "redis"):
        assert pinned(name) == version(name), (
            f"{name}: requirements.txt differs from the tested install"
        )


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker's .dockerignore rules (last match wins, ! re-includes) drop ``path``."""
    ignored = False
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        if any(
            fnmatch(prefix, pattern) or fnmatch(prefix, f"*/{pattern.removeprefix('**/')}")
            for prefix in prefixes
        ):
            ignored = not negate
    return ignored


def test_build_context_holds_what_the_dockerfile_copies_and_no_secrets():
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for op, args in dockerfile_instructions():
        if op != "COPY":
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: missing from the repository"
            assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    for secret_or_bulk in (
        ".env",
        ".venv/bin/python",
        "data/demo/practice.sqlite",
        ".git/config",
        "tests/conftest.py",
    ):
        assert _ignored(secret_or_bulk, patterns), f"{secret_or_bulk} would enter the build context"
    assert not _ignored(".env.example", patterns)


# -- the stack's helpers, run for real --------------------------------------------------------------


def _load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_env_writes_every_secret(tmp_path, raw_compose):
    from cryptography.fernet import Fernet

    make_env = _load_module(REPO / "deploy" / "compose" / "make_env.py")
    out = tmp_path / ".env"
    assert make_env.main(["--example", str(ENV_EXAMPLE), "--out", str(out)]) == 0
    env = read_env_file(out)
    assert "change-me" not in env.values()
    assert out.stat().st_mode & 0o777 == 0o600
    Fernet(env["AIRFLOW_FERNET_KEY"].encode())  # a valid key, or this raises
    secrets = [env[k] for k, v in read_env_file(ENV_EXAMPLE).items() if v == "change-me"]
    assert len(set(secrets)) == len(secrets) and all(
        re.fullmatch(r"[0-9a-f]{48}|[\w-]{43}=", s) for s in secrets
    )
    assert env["AIRFLOW_UID"] == str(os.getuid())
    interpolated(raw_compose, env)  # nothing missing
    before = out.read_text()
    assert make_env.main(["--example", str(ENV_EXAMPLE), "--out", str(out)]) == 1
    assert out.read_text() == before, "an existing .env is kept"


@pytest.mark.postgres
def test_postgres_init_script_creates_both_databases():
    if shutil.which("psql") is None:
        pytest.skip("needs the psql client")
    try:
        socket.create_connection((POSTGRES_HOST, 5432), timeout=1).close()
    except OSError:
        pytest.skip(f"needs PostgreSQL on {POSTGRES_HOST}:5432 (not reachable)")
    import sqlalchemy as sa

    suffix = uuid.uuid4().hex[:8]
    names = {
        "MET_PRACTICE_DB_NAME": f"mt_practice_{suffix}",
        "MET_RESULTS_DB_NAME": f"mt_results_{suffix}",
    }
    env = {
        **os.environ,
        **names,
        "PGHOST": POSTGRES_HOST,
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "postgres",
        "MET_PRACTICE_DB_PASSWORD": "pw'with\"quotes",
        "MET_RESULTS_DB_PASSWORD": secrets_hex(),
    }
    admin = sa.create_engine(
        f"postgresql+psycopg://postgres@{POSTGRES_HOST}:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        done = subprocess.run(
            ["bash", str(REPO / "deploy/compose/postgres/init-databases.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        with admin.connect() as conn:
            owners = dict(
                conn.execute(
                    sa.text(
                        "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = ANY(:n)"
                    ),
                    {"n": list(names.values())},
                ).all()
            )
        assert owners == {name: name for name in names.values()}
        without = {k: v for k, v in env.items() if k != "MET_RESULTS_DB_PASSWORD"}
        refused = subprocess.run(
            ["bash", str(REPO / "deploy/compose/postgres/init-databases.sh")],
            env=without,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode != 0 and "MET_RESULTS_DB_PASSWORD" in refused.stderr
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def secrets_hex() -> str:
    import secrets

    return secrets.token_hex(16)


@pytest.fixture
def sendgrid_double(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """deploy/compose/sendgrid_double.py as its own process on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outbox = tmp_path / "outbox"
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "deploy/compose/sendgrid_double.py"),
            "--port",
            str(port),
            "--outbox",
            str(outbox),
        ],
        env={**os.environ, "SENDGRID_DOUBLE_API_KEY": "SG.test-key"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    host = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{host}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                assert process.poll() is None, (
                    process.stderr.read().decode() if process.stderr else ""
                )
                assert time.monotonic() < deadline, "the double did not start"
                time.sleep(0.1)
        yield host, outbox
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_sendgrid_double_answers_the_real_client(sendgrid_double):
    from python_http_client.exceptions import BadRequestsError, UnauthorizedError
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Mail

    host, outbox = sendgrid_double
    client = SendGridAPIClient(api_key="SG.test-key", host=host)
    client.client.timeout = 10  # the client has none of its own
    mail = Mail(
        from_email="met-audit@example.org",
        to_emails="lead.one@example.org",
        subject="MET audit: 3 findings",
        plain_text_content="See the findings.",
    )
    response = client.send(mail)
    assert response.status_code == 202
    assert response.headers["X-Message-Id"]
    kept = list(outbox.glob("*.json"))
    assert (
        len(kept) == 1
        and json.loads(kept[0].read_text())["body"]["subject"] == "MET audit: 3 findings"
    )
    with urllib.request.urlopen(f"{host}/messages", timeout=5) as listing:
        messages = json.loads(listing.read())
    assert [(m["to"], m["subject"]) for m in messages] == [
        (["lead.one@example.org"], "MET audit: 3 findings")
    ]

    wrong_key = SendGridAPIClient(api_key="SG.other", host=host)
    wrong_key.client.timeout = 10
    with pytest.raises(UnauthorizedError):
        wrong_key.send(mail)
    with pytest.raises(BadRequestsError) as bad:
        client.client.mail.send.post(request_body={"subject": "no recipients"})
    assert json.loads(bad.value.body)["errors"][0]["message"]
    sandboxed = mail.get()
    sandboxed["mail_settings"] = {"sandbox_mode": {"enable": True}}
    assert client.client.mail.send.post(request_body=sandboxed).status_code == 200
    assert len(list(outbox.glob("*.json"))) == 2
