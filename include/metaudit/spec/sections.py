"""One validator for the sections of the configuration file, reporting every problem.

Each module that owns a section (``source`` in :mod:`metaudit.spec.settings`,
``email`` in :mod:`metaudit.mail.config`, ``access`` in :mod:`metaudit.web.access`,
``packets`` in :mod:`metaudit.packets.layout`) declares the section's keys as
:class:`Field` values and calls :func:`validate_section`. The problems go into
one :class:`~metaudit.errors.Problems`, so that one error names them all, by
path, one line each::

    email.max_attempts: must be a whole number >= 1, got 0
    packets.folder: unknown key (did you mean 'dir'?); keys: dir, activity_days

A key the section does not declare is reported with the closest declared key.
Values are normalised (numbers to int or float, text trimmed where the kind
says so); a key with a problem gets its default, so the caller can go on and
find the next problem before raising.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metaudit.errors import Problems

# Kinds of key: how a value is checked.
BOOL = "bool"  # true or false
NUMBER = "number"  # a number within a range, whole or not
CHOICE = "choice"  # one of a few words, compared lower-case
TEXT = "text"  # any text, as written
CUSTOM = "custom"  # checked by the field's own function

# A check of a CUSTOM field: the normalised value, after adding any problem at ``path``.
Check = Callable[[Any, str, Problems], Any]


@dataclass(frozen=True)
class Field:
    """One key of a section: its kind, its bounds or listed values, its default.

    ``minimum`` and ``maximum`` bound a NUMBER inclusively; ``above`` is an
    exclusive lower bound (a timeout must be > 0). ``unit`` names what is
    counted in the message ("a whole number of days >= 1"). ``what`` names the
    expected TEXT ("a folder path"). A key written as ``null`` counts as absent
    unless ``null_is_default`` is false, when the null itself is checked (and is
    a problem for every kind but CUSTOM, whose ``check`` decides).
    """

    name: str
    kind: str
    default: Any = None
    required: bool = False
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    whole: bool = False
    unit: str | None = None
    what: str | None = None
    null_is_default: bool = True
    check: Check | None = None


def show(value: Any) -> str:
    """A value as the user wrote it in YAML, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def report_unknown_keys(
    path: str, raw: Mapping[Any, Any], known: Iterable[str], problems: Problems, what: str = "key"
) -> None:
    """Add one problem for each key of ``raw`` not in ``known``, with the closest known key.

    ``path`` is the mapping's path ("" for the top of the file); ``what`` is the
    word for a key ("section" at the top of the file).
    """
    known = tuple(known)
    for key in raw:
        if key not in known:
            problems.add(
                f"{path}.{key}" if path else str(key),
                f"unknown {what}{did_you_mean(str(key), known)}; {what}s: {', '.join(known)}",
            )


def _number_wording(field: Field) -> str:
    kind = "a whole number" if field.whole else "a number"
    if field.unit:
        kind += f" of {field.unit}"
    low = (
        f"> {field.above:g}"
        if field.above is not None
        else f">= {field.minimum:g}"
        if field.minimum is not None
        else None
    )
    if field.maximum is None:
        return f"{kind} {low}" if low else kind
    if field.above is None and field.minimum is not None:
        return f"{kind} between {field.minimum:g} and {field.maximum:g}"
    return f"{kind} {low} and <= {field.maximum:g}" if low else f"{kind} <= {field.maximum:g}"


def _check_number(field: Field, value: Any, path: str, problems: Problems) -> Any:
    # YAML reads `yes` as true; bool is an int subclass but never a number of anything.
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and field.whole and not float(value).is_integer():
        ok = False
    if ok and field.above is not None and not value > field.above:
        ok = False
    if ok and field.minimum is not None and value < field.minimum:
        ok = False
    if ok and field.maximum is not None and value > field.maximum:
        ok = False
    if not ok:
        problems.add(path, f"must be {_number_wording(field)}, got {show(value)}")
        return field.default
    return int(value) if field.whole else float(value)


def _check(field: Field, value: Any, path: str, problems: Problems) -> Any:
    """The normalised value of one key (its default after adding a problem)."""
    if field.kind == CUSTOM:
        if field.check is None:
            raise ValueError(f"field {field.name!r} is CUSTOM but has no check")
        before = len(problems.items)
        out = field.check(value, path, problems)
        return out if len(problems.items) == before else field.default
    if field.kind == NUMBER:
        return _check_number(field, value, path, problems)
    if field.kind == BOOL:
        if isinstance(value, bool):
            return value
        problems.add(path, f"must be true or false, got {show(value)}")
    elif field.kind == CHOICE:
        allowed = field.allowed or ()
        word = value.strip().lower() if isinstance(value, str) else None
        if word in allowed:
            return word
        problems.add(path, f"must be one of {', '.join(allowed)}, got {show(value)}")
    elif field.kind == TEXT:
        if isinstance(value, str):
            return value
        problems.add(path, f"must be {field.what or 'text'}, got {show(value)}")
    else:
        raise ValueError(f"field {field.name!r} has an unknown kind {field.kind!r}")
    return field.default


def validate_section(
    path: str,
    raw: Any,
    fields: Iterable[Field],
    problems: Problems | None = None,
    *,
    report_unknown: bool = True,
) -> tuple[dict[str, Any], Problems]:
    """The section's values by key name (defaults filled in), and the problems found.

    ``path`` names the section in messages ("email", "practices.PR-1.email").
    ``raw`` is the section as read from YAML: None is an empty section. The
    problems are added to ``problems`` when given (one error for several
    sections), else to a new collector; the caller raises with
    :meth:`Problems.raise_if_any`. With ``report_unknown`` false, keys that
    ``fields`` does not declare are left alone (another module owns them).
    """
    fields = tuple(fields)
    problems = Problems() if problems is None else problems
    values = {field.name: field.default for field in fields}
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        keys = ", ".join(field.name for field in fields)
        problems.add(path, f"must be a mapping with keys {keys}, got {show(raw)}")
        return values, problems
    if report_unknown:
        report_unknown_keys(path, raw, (field.name for field in fields), problems)
    for field in fields:
        key_path = f"{path}.{field.name}"
        if field.name not in raw:
            if field.required:
                problems.add(key_path, "is required")
            continue
        value = raw[field.name]
        if value is None and field.null_is_default:
            if field.required:
                problems.add(key_path, "is required")
            continue
        values[field.name] = _check(field, value, key_path, problems)
    return values, problems
