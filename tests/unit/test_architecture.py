"""The package's layout holds: its layers, no import circles, a docstring per folder.

The layers are import-linter contracts in pyproject.toml (docs/architecture.md draws
them); this test runs them, so CI fails on an import that reaches up a layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "include" / "metaudit"


def test_every_import_respects_the_layers() -> None:
    assert lint_imports(str(ROOT / "pyproject.toml"), no_cache=True) == 0


def test_no_module_imports_itself_back() -> None:
    graph = grimp.build_graph("metaudit", cache_dir=None)
    circles = sorted(
        f"{importer} -> {imported} -> ... -> {importer}"
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if graph.chain_exists(importer=imported, imported=importer)
    )
    assert circles == []


def test_every_folder_says_what_it_is_for() -> None:
    folders = [p.parent for p in PACKAGE.rglob("__init__.py") if "migrations" not in p.parts]
    missing = [
        str(folder.relative_to(PACKAGE))
        for folder in folders
        if not ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
    ]
    assert missing == []


def test_the_suites_ship_inside_the_package_and_are_found_without_a_setting(monkeypatch) -> None:
    import tomllib

    from metaudit import config
    from metaudit.check.derive import FAMILIES
    from metaudit.check.gx import expectations_dir

    monkeypatch.delenv(config.EXPECTATIONS_DIR_ENV, raising=False)
    found = expectations_dir().resolve()
    assert found == (PACKAGE / "spec" / "suites").resolve()
    assert sorted(p.stem for p in found.glob("*.json")) == sorted(f.lower() for f in FAMILIES)
    # A wheel carries them: they are package data, not a folder beside the package.
    build = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "spec/suites/*.json" in build["tool"]["setuptools"]["package-data"]["metaudit"]
    # The repository's expectations/ is the same folder, for those who look for it there.
    assert (ROOT / "expectations").resolve() == found
