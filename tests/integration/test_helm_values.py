"""deploy/helm/values.yaml against the official Apache Airflow chart, without a cluster.

What is checked, and how:

- The values merged with the chart's own values.yaml the way Helm merges them
  (maps key by key, lists and scalars replaced, null deletes) validate against
  the chart's values.schema.json, for both charts in ../shared/reference/
  (1.19.0, released, which the values are written for, and 1.20.0-dev). Those
  files are test data: without ../shared these tests skip, saying why.
- None of our keys is one the schema marks deprecated.
- Sign-in works with the image's packages: the auth manager is importable from a
  pinned requirement, the real SimpleAuthManager accepts the passwords file the
  docs' Secret holds without generating (and logging) a password of its own, and
  the chart's FAB create-user job (admin/admin) is off.
- The Redis password has a single source: one Secret gives Redis its password
  and the broker URL, made from one value by the docs' own commands (run here
  with a stand-in kubectl).
- PgBouncer is off (the chart would point it at the disabled bundled database).

Not done here: rendering the chart's templates (they are not at hand) or
installing on a cluster.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from importlib.metadata import distribution, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from test_compose import CELERY_CONFIG_OPTIONS, env_of, interpolated, pinned, read_env_file

REPO = Path(__file__).resolve().parents[2]
HELM_VALUES = REPO / "deploy" / "helm" / "values.yaml"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
REFERENCE = REPO.parent / "shared" / "reference"
# The chart the values are written for (the newest released chart in reach), and the
# chart on apache/airflow main they are also checked against.
CHART_VERSION = "1.19.0"
CHART_VERSIONS = (CHART_VERSION, "1.20.0-dev")
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
# The keys the chart reads from each Secret it is given by name.
CHART_SECRET_KEYS = {
    ("data", "metadataSecretName"): "connection",
    ("data", "brokerUrlSecretName"): "connection",
    ("redis", "passwordSecretName"): "password",
    ("fernetKeySecretName",): "fernet-key",
    ("apiSecretKeySecretName",): "api-secret-key",
    ("jwtSecretName",): "jwt-secret",
}


# -- Helm's merge and the chart's reference files ---------------------------------------------------


def without_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: without_nulls(v) for k, v in node.items() if v is not None}
    return node


def helm_merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The chart's values with ours over them, as Helm coalesces them: maps merge key
    by key, lists and scalars replace, and a null removes the chart's key."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = without_nulls(copy.deepcopy(value))
    return merged


def test_helm_merge_follows_helm() -> None:
    chart = {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "f": "x", "g": 1}
    ours = {"a": {"c": [3], "d": {"h": 2}}, "f": None, "i": {"j": None, "k": 1}}
    assert helm_merge(chart, ours) == {
        "a": {"b": 1, "c": [3], "d": {"e": 1, "h": 2}},
        "g": 1,
        "i": {"k": 1},
    }
    assert chart["a"]["c"] == [1, 2], "the chart's values are not changed"


class Chart:
    """One chart version's values.schema.json and default values.yaml."""

    def __init__(self, version: str) -> None:
        folder = REFERENCE / f"airflow-chart-{version}"
        self.version = version
        self.schema = json.loads((folder / "values.schema.json").read_text())
        self.defaults = yaml.safe_load((folder / "values.yaml").read_text())
        self.chart = yaml.safe_load((folder / "Chart.yaml").read_text())
        jsonschema.Draft7Validator.check_schema(self.schema)
        self.validator = jsonschema.Draft7Validator(
            self.schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
        )

    def errors(self, values: dict[str, Any]) -> list[str]:
        found = sorted(self.validator.iter_errors(values), key=lambda e: list(e.absolute_path))
        return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in found]

    def node(self, path: tuple[str, ...]) -> dict[str, Any] | None:
        """The schema node of a values path, None where the schema names no such key."""
        node = self.schema
        for key in path:
            node = node.get("properties", {}).get(key)
            if node is None:
                return None
        return node

    def deprecated(self, values: dict[str, Any]) -> list[str]:
        """Paths of ``values`` whose schema description says deprecated."""
        found = []

        def walk(node: Any, path: tuple[str, ...]) -> None:
            if not isinstance(node, dict):
                return
            for key, value in node.items():
                here = (*path, key)
                described = self.node(here)
                if described is None:
                    continue
                if "deprecated" in described.get("description", "").lower():
                    found.append(f"{'.'.join(here)}: {described['description']}")
                walk(value, here)

        walk(values, ())
        return found


@pytest.fixture(scope="module", params=CHART_VERSIONS)
def chart(request: pytest.FixtureRequest) -> Chart:
    folder = REFERENCE / f"airflow-chart-{request.param}"
    if not (folder / "values.schema.json").is_file():
        pytest.skip(f"the Airflow chart {request.param} reference is not here ({folder} absent)")
    return Chart(request.param)


@pytest.fixture(scope="module")
def ours() -> dict[str, Any]:
    return yaml.safe_load(HELM_VALUES.read_text())


@pytest.fixture(scope="module")
def released_chart() -> Chart:
    folder = REFERENCE / f"airflow-chart-{CHART_VERSION}"
    if not folder.is_dir():
        pytest.skip(f"the Airflow chart {CHART_VERSION} reference is not here ({folder} absent)")
    return Chart(CHART_VERSION)


@pytest.fixture(scope="module")
def merged(released_chart: Chart, ours: dict[str, Any]) -> dict[str, Any]:
    """What the chart's templates see: its defaults with our values over them."""
    return helm_merge(released_chart.defaults, ours)


# -- the chart's schema ---------------------------------------------------------------------------


def test_merged_values_pass_the_charts_values_schema(chart: Chart, ours: dict[str, Any]) -> None:
    assert chart.errors(chart.defaults) == [], "the chart's own defaults must pass its schema"
    errors = chart.errors(helm_merge(chart.defaults, ours))
    assert not errors, f"chart {chart.version}:\n" + "\n".join(errors)


def test_the_schema_check_catches_mistakes(chart: Chart, ours: dict[str, Any]) -> None:
    broken = copy.deepcopy(ours)
    broken["workers"]["celery"]["replicas"] = "two"
    broken["workers"]["celery"]["persistence"]["sise"] = "10Gi"  # misspelt
    broken["redis"]["passwordSecret"] = "metaudit-airflow-redis"  # not a chart key
    broken["images"]["airflow"]["pullPolicy"] = "Sometimes"
    errors = "\n".join(chart.errors(helm_merge(chart.defaults, broken)))
    assert "workers.celery.replicas: 'two' is not of type 'integer'" in errors
    assert "'sise' was unexpected" in errors
    assert "'passwordSecret' was unexpected" in errors
    assert "images.airflow.pullPolicy: 'Sometimes' is not one of" in errors


def test_none_of_our_keys_is_deprecated(chart: Chart, ours: dict[str, Any]) -> None:
    assert chart.deprecated(ours) == []
    # The check reads the schema for real: the keys the values used before are flagged.
    old = {"workers": {"replicas": 2, "persistence": {"enabled": True}}, "webserver": {}}
    old["webserver"]["defaultUser"] = {"enabled": False}
    flagged = {line.split(":")[0] for line in chart.deprecated(old)}
    assert {"workers.replicas", "workers.persistence", "webserver.defaultUser"} <= flagged


def test_values_and_docs_name_the_chart_version_they_are_tested_against(
    released_chart: Chart,
) -> None:
    assert released_chart.chart["version"] == CHART_VERSION
    header = HELM_VALUES.read_text().split("\n\n", 1)[0]
    assert f"chart {CHART_VERSION}" in header
    assert f"--version {CHART_VERSION}" in header
    doc = DEPLOYMENT_DOC.read_text()
    assert f"--version {CHART_VERSION}" in doc
    named = set(re.findall(r"--version ([\w.-]*\w)", doc + HELM_VALUES.read_text()))
    assert named == {CHART_VERSION}, f"every helm command must use chart {CHART_VERSION}"


def test_airflow_config_keys_are_current_airflow_options(ours: dict[str, Any]) -> None:
    from airflow.configuration import conf

    known = conf.configuration_description
    renamed = {(old[0], old[1]) for old in conf.deprecated_options.values()}
    for section, options in ours["config"].items():
        for key in options:
            assert key in known.get(section, {}).get("options", {}), f"[{section}] {key} unknown"
            assert (section, key) not in renamed, f"[{section}] {key} is a deprecated name"


# -- 1. sign-in with what the image has ---------------------------------------------------------


def test_auth_manager_is_one_the_image_has(merged: dict[str, Any]) -> None:
    chart_default = released_chart_default_auth_manager()
    path = merged["config"]["core"]["auth_manager"]
    assert path != chart_default, "the chart's default (FabAuthManager) needs the FAB provider"
    assert path == SIMPLE_AUTH_MANAGER
    module_name, _, class_name = path.rpartition(".")
    module = importlib.import_module(module_name)
    assert isinstance(getattr(module, class_name), type)
    # Importable from a pinned requirement of the image, not from a test-only package.
    core = distribution("apache-airflow-core")
    assert pinned("apache-airflow-core") == core.version
    assert Path(module.__file__ or "").resolve() in {
        Path(str(core.locate_file(f))).resolve() for f in core.files or ()
    }
    assert not re.search(r"^apache-airflow-providers-fab==", pinned_requirements(), re.M)


def released_chart_default_auth_manager() -> str:
    defaults = yaml.safe_load(
        (REFERENCE / f"airflow-chart-{CHART_VERSION}" / "values.yaml").read_text()
    )
    return str(defaults["config"]["core"]["auth_manager"])


def pinned_requirements() -> str:
    return (REPO / "requirements.txt").read_text()


def test_no_default_credentials(merged: dict[str, Any], ours: dict[str, Any]) -> None:
    # The chart's create-user job runs FAB's CLI with admin/admin.
    assert merged["createUserJob"]["defaultUser"]["password"] == "admin", "chart default"
    assert merged["createUserJob"]["enabled"] is False
    assert "defaultUser" not in merged.get("webserver", {})
    # No bundled database (postgres/postgres), no password in the values.
    assert merged["postgresql"]["enabled"] is False
    assert merged["redis"].get("password") is None and merged["data"].get("brokerUrl") is None
    assert merged["data"].get("metadataSecretName")
    for key in ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"):
        assert not merged.get(key), f"{key} inline"
    for path in CHART_SECRET_KEYS:
        assert _get(ours, path), f"{'.'.join(path)}: the chart would make up its own secret"


def _get(values: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = values
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _api_server_copy(merged: dict[str, Any]) -> tuple[str, str]:
    """(source, target) of the passwords file the api-server copies before it starts."""
    args = merged["apiServer"]["args"]
    assert args[:2] == ["bash", "-c"]
    first, _, rest = args[2].partition("&&")
    assert rest.strip() == "exec airflow api-server"
    words = shlex.split(first)
    assert words[:3] == ["install", "-m", "600"], words
    return words[3], words[4]


def _mounted_volume(component: dict[str, Any], path: str) -> dict[str, Any]:
    mounts = [m for m in component["extraVolumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert len(mounts) == 1, f"{path}: not under one mount"
    volumes = {v["name"]: v for v in component["extraVolumes"]}
    return {**volumes[mounts[0]["name"]], "mount": mounts[0]}


def test_the_passwords_file_comes_from_a_secret_into_a_private_writable_copy(
    merged: dict[str, Any], docs_secrets: dict[str, dict[str, str]]
) -> None:
    api = merged["apiServer"]
    core = merged["config"]["core"]
    source, target = _api_server_copy(merged)
    assert target == core["simple_auth_manager_passwords_file"]
    secret = _mounted_volume(api, source)
    assert secret["mount"]["readOnly"] is True
    secret_name = secret["secret"]["secretName"]
    assert Path(source).name in docs_secrets[secret_name], "the Secret's key is the file copied"
    # SimpleAuthManager opens its file for writing: a Secret volume is read-only.
    copy_volume = _mounted_volume(api, target)
    assert "emptyDir" in copy_volume and not copy_volume["mount"].get("readOnly")
    # Only the api-server signs users in: the other components never see the passwords.
    for volume in merged["volumes"]:
        assert volume.get("secret", {}).get("secretName") != secret_name


def test_simple_auth_manager_takes_the_docs_passwords_and_generates_none(
    merged: dict[str, Any],
    docs_secrets: dict[str, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    core = merged["config"]["core"]
    source, _ = _api_server_copy(merged)
    secret_name = _mounted_volume(merged["apiServer"], source)["secret"]["secretName"]
    passwords_json = docs_secrets[secret_name][Path(source).name]
    passwords = json.loads(passwords_json)
    users = [entry.split(":")[0] for entry in core["simple_auth_manager_users"].split(",")]
    assert set(users) <= set(passwords), "a user without a password gets one generated and logged"
    assert all(len(p) >= 16 and p not in users for p in passwords.values())
    copied = tmp_path / "passwords.json"
    copied.write_text(passwords_json)
    for key in ("auth_manager", "simple_auth_manager_users"):
        monkeypatch.setenv(f"AIRFLOW__CORE__{key.upper()}", core[key])
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(copied))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    manager = SimpleAuthManager()
    manager.init()
    assert copied.read_text() == passwords_json, "SimpleAuthManager rewrote the passwords"
    assert manager.get_passwords() == passwords
    assert "Password for user" not in capsys.readouterr().out
    assert [(u.username, u.role) for u in manager.get_users()] == [
        tuple(entry.split(":")) for entry in core["simple_auth_manager_users"].split(",")
    ]


# -- 2. one source for the Redis password -------------------------------------------------------


def test_redis_and_the_broker_url_share_one_secret(
    merged: dict[str, Any], docs_secrets: dict[str, dict[str, str]]
) -> None:
    assert merged["redis"]["enabled"] is True
    name = merged["redis"]["passwordSecretName"]
    assert name and merged["data"]["brokerUrlSecretName"] == name
    secret = docs_secrets[name]
    broker = urlsplit(secret["connection"])
    assert broker.scheme == "redis" and broker.port == 6379
    assert broker.password == secret["password"], "the broker URL holds Redis's own password"
    assert broker.hostname == f"{docs_release()}-redis"
    assert re.fullmatch(r"[0-9a-f]{32,}", secret["password"]), "URL-safe and long"


# -- 3. PgBouncer ---------------------------------------------------------------------------------


def test_pgbouncer_is_off_or_pools_the_real_metadata_database(merged: dict[str, Any]) -> None:
    pgbouncer, data = merged["pgbouncer"], merged["data"]
    if pgbouncer["enabled"]:
        # The chart writes pgbouncer.ini from data.metadataConnection: with a metadata
        # secret it would pool the bundled database Airflow no longer uses.
        assert pgbouncer.get("configSecretName") or (
            not data.get("metadataSecretName") and data["metadataConnection"].get("host")
        ), "PgBouncer would pool the chart's default database, not the real one"
    else:
        assert merged["postgresql"]["enabled"] is False and data["metadataSecretName"]


# -- 4. workers ---------------------------------------------------------------------------------


def test_workers_scale_through_the_current_celery_keys(
    merged: dict[str, Any], ours: dict[str, Any]
) -> None:
    assert "replicas" not in ours["workers"] and "persistence" not in ours["workers"]
    celery = merged["workers"]["celery"]
    assert celery["replicas"] >= 2
    assert celery["persistence"]["enabled"] is True
    assert merged["config"]["celery"]["worker_concurrency"] == compose_worker_concurrency()
    doc = DEPLOYMENT_DOC.read_text()
    assert "--set workers.celery.replicas=" in doc
    assert "workers.replicas" not in doc and "workers.persistence" not in doc


def compose_worker_concurrency() -> int:
    compose = interpolated(yaml.safe_load(COMPOSE_FILE.read_text()), read_env_file(ENV_EXAMPLE))
    return int(env_of(compose["services"]["airflow-worker"])["AIRFLOW__CELERY__WORKER_CONCURRENCY"])


# -- the metadata database through the pinned driver ---------------------------------------------


def test_the_async_metadata_connection_uses_the_pinned_driver(
    ours: dict[str, Any], docs_secrets: dict[str, dict[str, str]]
) -> None:
    """The chart sets only the sync connection; Airflow would derive postgresql+asyncpg."""
    from airflow.settings import _get_async_conn_uri_from_sync
    from sqlalchemy.ext.asyncio import create_async_engine

    secret = ours["data"]["metadataSecretName"]
    extra = {item["name"]: item for item in yaml.safe_load(ours["extraEnv"])}
    ref = extra["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret, "key": "connection"}
    url = docs_secrets[secret]["connection"]
    assert urlsplit(url).scheme == "postgresql+psycopg"
    assert pinned("psycopg") == version("psycopg")
    assert "asyncpg" in _get_async_conn_uri_from_sync(url), "what the chart alone would give"
    assert not re.search(r"^asyncpg==", pinned_requirements(), re.M | re.I)
    engine = create_async_engine(url)  # the dialect loads; nothing connects
    assert engine.dialect.driver == "psycopg" and engine.dialect.is_async
    engine.sync_engine.dispose()


# -- the docs' Secrets, created by their own commands ---------------------------------------------


def docs_release() -> str:
    """The release name of the docs' one `helm install` line."""
    installs = re.findall(r"^helm install (\S+) apache-airflow/airflow .*$", doc_text(), re.M)
    assert len(installs) == 1, "docs/deployment.md has one helm install line"
    return installs[0]


def doc_text() -> str:
    return DEPLOYMENT_DOC.read_text()


def docs_secret_commands() -> str:
    """The bash block of the docs' Secrets step."""
    step = doc_text().split("### 2. Create the Secrets", 1)
    assert len(step) == 2, "docs/deployment.md has the step '### 2. Create the Secrets'"
    block = re.search(r"```bash\n(.*?)```", step[1], re.S)
    assert block, "the Secrets step has a bash block"
    return block[1]


@pytest.fixture(scope="module")
def docs_secrets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    """Secret name -> {key: value}, from running the docs' commands with a stand-in kubectl."""
    for tool in ("bash", "openssl", "python3"):
        if shutil.which(tool) is None:
            pytest.skip(f"running the docs' Secrets commands needs {tool}")
    record = tmp_path_factory.mktemp("kubectl") / "calls"
    stand_in = 'kubectl() { printf "%s\\0" "$@" >> "$KUBECTL_RECORD"; printf "\\n\\0" >> "$KUBECTL_RECORD"; }\n'
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", stand_in + docs_secret_commands()],
        env={**os.environ, "KUBECTL_RECORD": str(record)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls: list[list[str]] = [[]]
    for word in record.read_text().split("\0")[:-1]:
        if word == "\n":
            calls.append([])
        else:
            calls[-1].append(word)
    secrets: dict[str, dict[str, str]] = {}
    for call in calls[:-1]:
        if call[:3] != ["create", "secret", "generic"]:
            continue
        assert "-n" in call and call[call.index("-n") + 1] == "met-audit", call[:4]
        literals = [w.removeprefix("--from-literal=") for w in call if w.startswith("--from-")]
        assert all(not w.startswith("--from-") for w in literals), "only --from-literal"
        secrets[call[3]] = dict(w.split("=", 1) for w in literals)
    yield secrets


def test_docs_create_every_secret_the_values_name_with_the_keys_the_chart_reads(
    ours: dict[str, Any], docs_secrets: dict[str, dict[str, str]]
) -> None:
    from cryptography.fernet import Fernet

    for path, key in CHART_SECRET_KEYS.items():
        name = _get(ours, path)
        assert name in docs_secrets, f"docs/deployment.md does not create {name}"
        assert docs_secrets[name].get(key), f"{name}: no key {key!r} (the chart reads it)"
    Fernet(docs_secrets[ours["fernetKeySecretName"]]["fernet-key"].encode())
    metadata = urlsplit(docs_secrets[ours["data"]["metadataSecretName"]]["connection"])
    assert metadata.scheme.startswith("postgresql") and metadata.hostname
    env_from = yaml.safe_load(ours["extraEnvFrom"])
    (connections,) = [item["secretRef"]["name"] for item in env_from if "secretRef" in item]
    assert set(docs_secrets[connections]) == {
        "AIRFLOW_CONN_MET_PRACTICE_DB",
        "AIRFLOW_CONN_MET_RESULTS_DB",
        "AIRFLOW_CONN_SENDGRID_DEFAULT",
        "METAUDIT_PACKET_KEY",
        "METAUDIT_PACKET_SIGNING_KEY",
    }
    assert "BEGIN PRIVATE KEY" in docs_secrets[connections]["METAUDIT_PACKET_SIGNING_KEY"]
    for conn in ("MET_PRACTICE_DB", "MET_RESULTS_DB", "SENDGRID_DEFAULT"):
        json.loads(docs_secrets[connections][f"AIRFLOW_CONN_{conn}"])  # Airflow's JSON form
    # Generated values differ from each other (no secret reused for another purpose).
    generated = [
        docs_secrets[ours["fernetKeySecretName"]]["fernet-key"],
        docs_secrets[ours["apiSecretKeySecretName"]]["api-secret-key"],
        docs_secrets[ours["jwtSecretName"]]["jwt-secret"],
        docs_secrets[ours["redis"]["passwordSecretName"]]["password"],
        docs_secrets[connections]["METAUDIT_PACKET_KEY"],
        docs_secrets[connections]["METAUDIT_PACKET_SIGNING_KEY"],
    ]
    assert len(set(generated)) == len(generated)


# -- what the values say for this project (kept from the first version) -------------------------


def test_helm_values_run_our_image_of_the_pinned_airflow(ours: dict[str, Any]) -> None:
    assert ours["airflowVersion"] == pinned("apache-airflow") == version("apache-airflow")
    image = ours["images"]["airflow"]
    assert image["repository"].endswith("/metaudit-airflow")
    assert image["tag"] not in ("", "latest")
    assert ours["executor"] == "CeleryExecutor"
    assert ours["config"]["celery"]["celery_config_options"] == CELERY_CONFIG_OPTIONS
    assert ours["dagProcessor"]["enabled"] is True


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, node


def test_helm_values_keep_secrets_in_kubernetes_secrets(ours: dict[str, Any]) -> None:
    inline = {
        "fernetKey",
        "apiSecretKey",
        "jwtSecret",
        "webserverSecretKey",
        "metadataConnection",
        "brokerUrl",
    }
    for path, value in _walk(ours):
        leaf = re.split(r"[.\[]", path)[-1]
        assert leaf not in inline or value in (None, ""), f"{path} holds a secret in the values"
        names_a_place = leaf.endswith(("SecretName", "_file"))  # where it is, not what
        if re.search(r"(?i)password|passwd|api[_-]?key", leaf) and not names_a_place:
            assert value in (None, ""), f"{path} holds a secret in the values"


def test_helm_values_share_one_data_volume_between_all_components(ours: dict[str, Any]) -> None:
    env = {item["name"]: item["value"] for item in ours["env"]}
    mounts = {m["mountPath"]: m["name"] for m in ours["volumeMounts"]}
    volumes = {v["name"]: v for v in ours["volumes"]}
    data_volume = volumes[mounts[env["METAUDIT_DATA_DIR"]]]
    # Snapshots written by one worker are read by tasks on the others: a shared claim.
    assert data_volume["persistentVolumeClaim"]["claimName"] == "metaudit-data"
    assert "ReadWriteMany" in doc_text()
    config_dir = Path(env["METAUDIT_CONFIG"]).parent.as_posix()
    assert "configMap" in volumes[mounts[config_dir]]
    # The suites ship inside the package: no folder to mount, no variable to set.
    assert "METAUDIT_EXPECTATIONS_DIR" not in env


def test_the_rebuild_posts_to_a_configured_api_address(merged: dict[str, Any]) -> None:
    """The packets page's rebuild refuses to run without an API address of the deployment's
    own (it never follows the request's Host header): the api-server is given its in-cluster
    service address."""
    env = {item["name"]: item.get("value") for item in merged["apiServer"]["env"]}
    address = env.get("METAUDIT_AIRFLOW_API_URL") or merged["config"].get("api", {}).get("base_url")
    assert address, "the api-server needs METAUDIT_AIRFLOW_API_URL or [api] base_url"
    assert address.startswith("http://met-audit-api-server:"), address
