"""The environment is read in config.py alone, every variable is listed, each has its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metaudit import config
from metaudit.errors import SettingsError

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "include" / "metaudit"
# Reading the environment, however spelt: os.environ[...], os.getenv, environ.get, from os import.
ENV_READ = re.compile(
    r"os\.environ|\bgetenv\b|\benviron\.get\b|from\s+os\s+import[^\n]*\benviron\b"
)
VARIABLE = re.compile(r"\bMETAUDIT_[A-Z][A-Z0-9_]*")
# Besides METAUDIT_*, the two variables of Airflow's and Arrow's the project reads.
OTHERS = (config.AIRFLOW_BASE_URL_ENV, config.ARROW_POOL_ENV)


def _text_files(*folders: Path) -> list[Path]:
    files = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files.append(path)
    return files


def test_no_module_but_config_reads_the_environment() -> None:
    readers = [
        str(path.relative_to(REPO_ROOT))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "config.py" and ENV_READ.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == [], "read the environment through metaudit.config: " + ", ".join(readers)
    # The scan finds what it looks for.
    assert ENV_READ.search((PACKAGE / "config.py").read_text(encoding="utf-8"))


def test_every_metaudit_variable_mentioned_is_listed() -> None:
    mentioned: dict[str, str] = {}
    for path in _text_files(REPO_ROOT / "include", REPO_ROOT / "dags", REPO_ROOT / "plugins"):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # a binary file names no variable
            continue
        for name in VARIABLE.findall(text):
            mentioned.setdefault(name, str(path.relative_to(REPO_ROOT)))
    unlisted = {name: where for name, where in mentioned.items() if name not in config.VARIABLES}
    assert unlisted == {}, "add them to config.VARIABLES (and a function reading each)"
    assert config.CONFIG_ENV in mentioned


def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*config.VARIABLES, *OTHERS):
        monkeypatch.delenv(name, raising=False)


def test_unset_variables_give_typed_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _unset(monkeypatch)
    assert config.config_file() is None
    # This checkout's data/; an installed package (no checkout around it) uses ./data.
    assert config.IN_CHECKOUT and config.data_dir() == REPO_ROOT / "data"
    monkeypatch.setattr(config, "IN_CHECKOUT", False)
    monkeypatch.chdir(tmp_path)
    assert config.data_dir() == tmp_path / "data"
    monkeypatch.undo()
    _unset(monkeypatch)
    assert config.demo_mode() is False
    assert config.packet_key() is None
    assert config.packets_dir() is None
    assert config.snapshot_keep_days() == config.DEFAULT_SNAPSHOT_KEEP_DAYS == 7
    assert config.airflow_api_url() is None
    assert config.airflow_base_url() is None
    assert config.expectations_dir() is None
    assert config.nightly_schedule() == ("30 5 * * *", "America/New_York")
    assert config.arrow_pool_chosen() is False


def test_set_variables_are_read_when_asked_and_typed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _unset(monkeypatch)
    monkeypatch.setenv(config.CONFIG_ENV, " /etc/metaudit.yaml ")
    monkeypatch.setenv(config.DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(config.DEMO_ENV, "1")
    monkeypatch.setenv(config.PACKET_KEY_ENV, " secret with blanks ")
    monkeypatch.setenv(config.PACKETS_DIR_ENV, str(tmp_path / "p"))
    monkeypatch.setenv(config.SNAPSHOT_KEEP_DAYS_ENV, "0")
    monkeypatch.setenv(config.EXPECTATIONS_DIR_ENV, str(tmp_path / "gx"))
    monkeypatch.setenv(config.NIGHTLY_CRON_ENV, "0 4 * * *")
    monkeypatch.setenv(config.ARROW_POOL_ENV, "system")
    assert config.config_file() == "/etc/metaudit.yaml"
    assert config.data_dir() == tmp_path
    assert config.demo_mode() is True
    # A key is a secret as given: not stripped.
    assert config.packet_key() == " secret with blanks "
    assert config.packets_dir() == tmp_path / "p"
    assert config.snapshot_keep_days() == 0
    assert config.expectations_dir() == tmp_path / "gx"
    assert config.nightly_schedule() == ("0 4 * * *", "America/New_York")
    assert config.arrow_pool_chosen() is True
    # Only "1" turns the demo on.
    monkeypatch.setenv(config.DEMO_ENV, "yes")
    assert config.demo_mode() is False


@pytest.mark.parametrize("bad", ["a week", "-1", "1.5"])
def test_a_bad_snapshot_keep_days_is_a_settings_error(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv(config.SNAPSHOT_KEEP_DAYS_ENV, bad)
    with pytest.raises(SettingsError, match="METAUDIT_SNAPSHOT_KEEP_DAYS must be a whole number"):
        config.snapshot_keep_days()


def test_every_listed_variable_is_described() -> None:
    for name, description in config.VARIABLES.items():
        assert name.startswith("METAUDIT_") and description.strip(), name
