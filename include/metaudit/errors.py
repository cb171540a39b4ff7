"""Project exceptions: each names what is wrong so an operator can act on it."""

from __future__ import annotations


class MetAuditError(Exception):
    """Base class of every error the audit raises on purpose."""


class ContractError(MetAuditError):
    """The source does not follow the data contract (missing tables or columns).

    Retrying does not help: somebody has to fix the source or its mapping.
    """

    def __init__(self, missing: dict[str, list[str]]) -> None:
        self.missing = missing
        parts = []
        for table, columns in sorted(missing.items()):
            if not columns:
                parts.append(f"table {table!r} is missing")
            else:
                cols = ", ".join(repr(c) for c in columns)
                parts.append(f"table {table!r} lacks column(s) {cols}")
        super().__init__("source does not follow the data contract: " + "; ".join(parts))


class SourceUnavailableError(MetAuditError):
    """The source database cannot be reached or read (often transient)."""


class SettingsError(MetAuditError):
    """The configuration file holds an invalid setting; the message names it."""


class Problems:
    """Every problem found in a configuration, by path, so that one error names them all."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, problem: str) -> None:
        self.items.append(f"{path}: {problem}")

    def raise_if_any(self, what: str, error: type[SettingsError] = SettingsError) -> None:
        """Raise ``error`` listing every problem, headed ``what: N problem(s)``."""
        if self.items:
            count = len(self.items)
            head = f"{what}: {count} problem{'s' if count > 1 else ''}"
            raise error(head + "\n  - " + "\n  - ".join(self.items))


class SuiteError(MetAuditError):
    """An expectation suite is broken (for example an expectation was dropped on load)."""
