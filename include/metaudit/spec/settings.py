"""Every number and code list of the rulebook as a setting, per practice and payer.

The defaults are the rulebook's (:class:`RuleSettings`). A YAML file may
override them::

    defaults:                 # for every practice
      timely_filing_days: 120
    payers:                   # per payer, for every practice
      Acme Health:
        timely_filing_days: 180
    practices:
      PR-1:
        settings:             # for this practice
          note_signature_days: 1
        payers:               # per payer, for this practice only
          acme health:
            unit_rule: ama

Precedence, weakest first: rulebook default < ``defaults`` < the practice's
``settings`` < top-level ``payers`` < the practice's ``payers``. Payer names
match ignoring case and surrounding blanks. Only the settings in
:data:`PAYER_SETTINGS` may be set per payer.

The file is read once and validated as a whole: every problem is reported in a
single :class:`~metaudit.errors.SettingsError` that names each bad setting by
its path (``practices.PR-1.payers.Acme.timely_filing_days``).

Rule derivations work on frames of many rows; :meth:`Settings.column`,
:meth:`Settings.isin` and :meth:`Settings.regex_any` resolve the settings once
per distinct (practice, payer) pair and map the result onto the rows.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import warnings
import zoneinfo
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from metaudit import config
from metaudit.errors import Problems, SettingsError
from metaudit.spec import contract
from metaudit.spec.sections import NUMBER, Field, report_unknown_keys, validate_section
from metaudit.spec.sections import did_you_mean as _did_you_mean
from metaudit.spec.sections import show as _show

# pandas and numpy are imported inside the frame helpers: loading and validating a
# configuration (an Airflow plugin or DAG file may do it) needs neither.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

CONFIG_ENV_VAR = config.CONFIG_ENV


@dataclass(frozen=True)
class RuleSettings:
    """The resolved settings of one practice (and payer): the rulebook's numbers.

    The field defaults are the rulebook defaults. Code lists are tuples of
    trimmed upper-case codes, except plan types and condition categories,
    which hold the contract's lower-case listed values. Patterns are regular
    expressions applied case-insensitively.
    """

    referral_validity_days: int = 90
    referral_expiry_notice_days: int = 14
    active_client_days: int = 14
    referrer_credentials: tuple[str, ...] = ("MD", "DO", "DPM", "NP", "PA")
    supervised_credentials: tuple[str, ...] = ("NP", "PA")
    supervisor_credentials: tuple[str, ...] = ("MD", "DO")
    medical_exercise_patterns: tuple[str, ...] = (r"medical\s+exercise", r"\bMET\b", r"\bMES\b")
    excluded_plan_types: tuple[str, ...] = (
        "medicare",
        "medicare_advantage",
        "medicaid",
        "managed_medicaid",
    )
    auth_visits_left_notice: int = 2
    auth_end_notice_days: int = 14
    prior_rehab_disciplines: tuple[str, ...] = ("PT", "OT", "DC")
    qualifying_condition_categories: tuple[str, ...] = ("post_surgical", "trauma", "chronic")
    note_signature_days: int = 2
    specialist_credentials: tuple[str, ...] = ("MES", "AMES")
    scope_of_practice_patterns: tuple[str, ...] = (
        r"\bdiagnos\w*",
        r"\bprescri\w*",
        r"\bmedications?\b",
        r"\btreat(s|ed|ing)?\b",
        r"\btreatment\b",
    )
    progress_report_days: int = 14
    reassessment_interval_days: int = 30
    reassessment_notice_days: int = 7
    medical_exercise_cpt_codes: tuple[str, ...] = ("97110", "97112", "97530")
    timed_cpt_codes: tuple[str, ...] = ("97110", "97112", "97530")
    max_diagnosis_pointers: int = 4
    unit_rule: str = "cms"
    timely_filing_days: int = 90
    denied_appeal_days: int = 30
    unanswered_claim_days: int = 30
    default_timezone: str = "America/New_York"


DEFAULTS = RuleSettings()

# Kinds of setting: how a value is checked and normalised.
DAYS = "days"  # whole number of days >= 0
COUNT = "count"  # whole number within [minimum, maximum]
CODES = "codes"  # list of codes, compared upper-case
VALUES = "values"  # list of listed values, compared lower-case
PATTERNS = "patterns"  # list of regular expressions, case-insensitive
CHOICE = "choice"  # one of a few words, lower-case
TIMEZONE = "timezone"  # an IANA time zone


@dataclass(frozen=True)
class SettingSpec:
    """How one setting is checked, and what it is for (rendered in the docs)."""

    name: str
    kind: str
    description: str
    payer: bool = False  # may be overridden per payer
    allowed: tuple[str, ...] | None = None  # closed set of values, normalised
    minimum: int = 0
    maximum: int | None = None

    @property
    def default(self) -> Any:
        return getattr(DEFAULTS, self.name)

    @property
    def is_list(self) -> bool:
        return self.kind in (CODES, VALUES, PATTERNS)


def _specs() -> tuple[SettingSpec, ...]:
    plan_types = tuple(v.lower() for v in contract.PLAN_TYPES)
    categories = contract.TABLES["conditions"].column("category").values or ()
    disciplines = contract.TABLES["rehab_discharges"].column("discipline").values or ()
    return (
        SettingSpec(
            "referral_validity_days",
            DAYS,
            "How long a referral stays valid after its referral date when it has no "
            "valid-until date.",
        ),
        SettingSpec(
            "referral_expiry_notice_days",
            DAYS,
            "How many days ahead a referral's expiry is announced.",
        ),
        SettingSpec(
            "active_client_days",
            DAYS,
            "A client is active when they had a completed session at most this many days "
            "before the audit date.",
        ),
        SettingSpec("referrer_credentials", CODES, "Credentials that may refer a client."),
        SettingSpec(
            "supervised_credentials",
            CODES,
            "Referrer credentials that need a supervising provider on the referral.",
        ),
        SettingSpec(
            "supervisor_credentials",
            CODES,
            "Credentials a supervising provider must hold.",
        ),
        SettingSpec(
            "medical_exercise_patterns",
            PATTERNS,
            "Regular expressions (case-insensitive); a referral's services requested must "
            "match one of them.",
        ),
        SettingSpec(
            "excluded_plan_types",
            VALUES,
            "Plan types that do not pay for medical exercise.",
            payer=True,
            allowed=plan_types,
        ),
        SettingSpec(
            "auth_visits_left_notice",
            COUNT,
            "An authorization is announced when this many visits or fewer are left.",
            payer=True,
        ),
        SettingSpec(
            "auth_end_notice_days",
            DAYS,
            "How many days ahead an authorization's end is announced.",
            payer=True,
        ),
        SettingSpec(
            "prior_rehab_disciplines",
            CODES,
            "Disciplines whose discharge proves that prior rehab is complete "
            "(PT, OT, DC for chiropractic).",
            allowed=tuple(v.upper() for v in disciplines),
        ),
        SettingSpec(
            "qualifying_condition_categories",
            VALUES,
            "Condition categories that qualify a client for medical exercise.",
            allowed=tuple(v.lower() for v in categories),
        ),
        SettingSpec(
            "note_signature_days",
            DAYS,
            "Days after a session within which its note must be signed.",
        ),
        SettingSpec(
            "specialist_credentials",
            CODES,
            "Staff credentials allowed to deliver sessions (with a current certification).",
        ),
        SettingSpec(
            "scope_of_practice_patterns",
            PATTERNS,
            "Regular expressions (case-insensitive) of wording outside the scope of practice "
            "in session and assessment notes.",
        ),
        SettingSpec(
            "progress_report_days",
            DAYS,
            "Days after a reassessment within which a progress report must be sent.",
        ),
        SettingSpec(
            "reassessment_interval_days",
            DAYS,
            "Days after the latest assessment by which the client must be reassessed.",
        ),
        SettingSpec(
            "reassessment_notice_days",
            DAYS,
            "How many days ahead a reassessment's due date is announced.",
        ),
        SettingSpec(
            "medical_exercise_cpt_codes",
            CODES,
            "CPT codes a medical exercise practice may bill.",
            payer=True,
        ),
        SettingSpec(
            "timed_cpt_codes",
            CODES,
            "Timed (15-minute) CPT codes whose units must be supported by documented minutes.",
            payer=True,
        ),
        SettingSpec(
            "max_diagnosis_pointers",
            COUNT,
            "Most diagnosis pointers a claim line may carry.",
            payer=True,
            minimum=1,
            maximum=len(contract.POINTER_LETTERS),
        ),
        SettingSpec(
            "unit_rule",
            CHOICE,
            "How minutes convert to units of timed codes: cms (the day's timed minutes added "
            "up first) or ama (each code on its own). A policy's own unit_rule wins.",
            payer=True,
            allowed=("cms", "ama"),
        ),
        SettingSpec(
            "timely_filing_days",
            DAYS,
            "Days after the earliest service date within which a claim must be submitted. "
            "A policy's own timely_filing_days wins.",
            payer=True,
        ),
        SettingSpec(
            "denied_appeal_days",
            DAYS,
            "Days after a denial by which the claim must be appealed.",
            payer=True,
        ),
        SettingSpec(
            "unanswered_claim_days",
            DAYS,
            "Days after submission after which a claim without an answer is announced.",
            payer=True,
        ),
        SettingSpec(
            "default_timezone",
            TIMEZONE,
            "Time zone of a practice whose record names none (IANA name); a note's signing "
            "day is taken in the practice's time zone.",
        ),
    )


SETTINGS: dict[str, SettingSpec] = {spec.name: spec for spec in _specs()}
PAYER_SETTINGS: frozenset[str] = frozenset(n for n, s in SETTINGS.items() if s.payer)

# Sections that later parts of the project read (email, audit packets, plugin
# access); they are accepted here unvalidated and validated by their owners.
RESERVED_TOP_LEVEL = ("email", "packets", "access")
RESERVED_PRACTICE_KEYS = ("name", "compliance_leads", "email", "packet_viewers", "letterhead")
TOP_LEVEL_KEYS = ("defaults", "practices", "payers", "source", *RESERVED_TOP_LEVEL)
# How long reading the source may take: one statement, or one wait for a lock (seconds).
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 300.0
MAX_STATEMENT_TIMEOUT_SECONDS = 86_400.0
SOURCE_FIELDS = (
    Field(
        "statement_timeout_seconds",
        NUMBER,
        default=DEFAULT_STATEMENT_TIMEOUT_SECONDS,
        above=0,
        maximum=MAX_STATEMENT_TIMEOUT_SECONDS,
        unit="seconds",
        # `statement_timeout_seconds:` left empty is a mistake, not "no timeout".
        null_is_default=False,
    ),
)
SOURCE_KEYS = tuple(field.name for field in SOURCE_FIELDS)
PRACTICE_KEYS = ("settings", "payers", *RESERVED_PRACTICE_KEYS)

assert {f.name for f in dataclasses.fields(RuleSettings)} == set(SETTINGS), "settings drifted"


# ------------------------------------------------------------------ validation


def _is_whole(value: Any) -> bool:
    # YAML reads `yes` as true; bool is an int subclass but never a count of days.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(spec: SettingSpec, value: Any, path: str, problems: Problems) -> Any:
    """The normalised value of one setting, or None after recording a problem."""
    if spec.kind == DAYS:
        if not _is_whole(value) or value < 0:
            problems.add(path, f"must be a whole number of days >= 0, got {_show(value)}")
            return None
        return int(value)
    if spec.kind == COUNT:
        ok = _is_whole(value) and value >= spec.minimum
        ok = ok and (spec.maximum is None or value <= spec.maximum)
        if not ok:
            bound = (
                f">= {spec.minimum}"
                if spec.maximum is None
                else f"between {spec.minimum} and {spec.maximum}"
            )
            problems.add(path, f"must be a whole number {bound}, got {_show(value)}")
            return None
        return int(value)
    if spec.kind == CHOICE:
        allowed = spec.allowed or ()
        word = value.strip().lower() if isinstance(value, str) else None
        if word not in allowed:
            problems.add(path, f"must be one of {', '.join(allowed)}, got {_show(value)}")
            return None
        return word
    if spec.kind == TIMEZONE:
        return _check_timezone(value, path, problems)
    return _check_list(spec, value, path, problems)


def _check_timezone(value: Any, path: str, problems: Problems) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems.add(
            path, f"must be an IANA time zone such as 'America/New_York', got {_show(value)}"
        )
        return None
    name = value.strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder
        hint = _did_you_mean(name, sorted(zoneinfo.available_timezones()))
        problems.add(path, f"unknown time zone{hint}, got {_show(value)}")
        return None
    return name


def _check_list(
    spec: SettingSpec, value: Any, path: str, problems: Problems
) -> tuple[str, ...] | None:
    what = {CODES: "codes", VALUES: "values", PATTERNS: "regular expressions"}[spec.kind]
    if not isinstance(value, list) or not value:
        problems.add(path, f"must be a non-empty list of {what}, got {_show(value)}")
        return None
    out: list[str] = []
    ok = True
    for i, item in enumerate(value):
        item_path = f"{path}[{i}]"
        # A bare YAML number such as 97110 is a code too.
        if _is_whole(item) and spec.kind == CODES:
            item = str(item)
        if not isinstance(item, str) or not item.strip():
            problems.add(item_path, f"must be non-blank text, got {_show(item)}")
            ok = False
            continue
        if spec.kind == PATTERNS:
            try:
                re.compile(item, re.IGNORECASE)
            except re.error as exc:
                problems.add(
                    item_path, f"not a valid regular expression ({exc}), got {_show(item)}"
                )
                ok = False
                continue
            text = item
        else:
            text = item.strip().upper() if spec.kind == CODES else item.strip().lower()
            if spec.allowed is not None and text not in spec.allowed:
                hint = _did_you_mean(text, spec.allowed)
                problems.add(
                    item_path,
                    f"{_show(item)} is not a listed value{hint}; listed: {', '.join(spec.allowed)}",
                )
                ok = False
                continue
        if text not in out:
            out.append(text)
    return tuple(out) if ok else None


def _check_settings(
    raw: Any, path: str, problems: Problems, *, payer: bool = False
) -> dict[str, Any]:
    """The valid, normalised overrides of one settings mapping."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.add(path, f"must be a mapping of setting names to values, got {_show(raw)}")
        return {}
    out: dict[str, Any] = {}
    for name, value in raw.items():
        key_path = f"{path}.{name}"
        if not isinstance(name, str) or name not in SETTINGS:
            problems.add(key_path, f"unknown setting{_did_you_mean(str(name), list(SETTINGS))}")
            continue
        spec = SETTINGS[name]
        if payer and not spec.payer:
            problems.add(
                key_path,
                "cannot be set per payer; set it under defaults or a practice's settings "
                f"(payer settings: {', '.join(sorted(PAYER_SETTINGS))})",
            )
            continue
        checked = _check_value(spec, value, key_path, problems)
        if checked is not None:
            out[name] = checked
    return out


def payer_key(name: str) -> str:
    """How payer names are compared: trimmed, case folded."""
    return name.strip().casefold()


def _check_payers(raw: Any, path: str, problems: Problems) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.add(path, f"must be a mapping of payer names to settings, got {_show(raw)}")
        return {}
    out: dict[str, dict[str, Any]] = {}
    written: dict[str, str] = {}
    for name, overrides in raw.items():
        name_path = f"{path}.{name}"
        if not isinstance(name, str) or not name.strip():
            problems.add(name_path, "a payer name must be non-blank text; quote it")
            continue
        key = payer_key(name)
        if key in written:
            problems.add(
                name_path,
                f"same payer as {written[key]!r} (payer names ignore case and surrounding blanks)",
            )
            continue
        written[key] = name
        out[key] = _check_settings(overrides, name_path, problems, payer=True)
    return out


@dataclass
class _Parsed:
    defaults: dict[str, Any]
    payers: dict[str, dict[str, Any]]
    practices: dict[str, dict[str, Any]]
    practice_payers: dict[str, dict[str, dict[str, Any]]]
    sections: dict[str, Any]
    practice_sections: dict[str, dict[str, Any]]
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS


def _check_source(body: Any, problems: Problems) -> float:
    """The ``source`` section: ``statement_timeout_seconds`` (> 0, at most a day)."""
    values, _ = validate_section("source", body, SOURCE_FIELDS, problems)
    return float(values["statement_timeout_seconds"])


def _parse(data: Any, source: str) -> _Parsed:
    problems = Problems()
    parsed = _Parsed({}, {}, {}, {}, {}, {})
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SettingsError(
            f"invalid configuration ({source}): the file must be a mapping with sections "
            f"{', '.join(TOP_LEVEL_KEYS)}, got {_show(data)}"
        )
    report_unknown_keys("", data, TOP_LEVEL_KEYS, problems, what="section")
    parsed.defaults = _check_settings(data.get("defaults"), "defaults", problems)
    parsed.payers = _check_payers(data.get("payers"), "payers", problems)
    parsed.sections = {k: data[k] for k in RESERVED_TOP_LEVEL if k in data}
    parsed.statement_timeout_s = _check_source(data.get("source"), problems)

    practices = data.get("practices")
    if practices is not None and not isinstance(practices, Mapping):
        problems.add("practices", f"must be a mapping of practice ids, got {_show(practices)}")
        practices = None
    for pid, body in (practices or {}).items():
        path = f"practices.{pid}"
        # Ids compare exactly as text; an unquoted YAML number (001) would lose its form.
        if not isinstance(pid, str) or not pid.strip():
            problems.add(path, "a practice id must be text; quote it")
            continue
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            problems.add(
                path, f"must be a mapping with {', '.join(PRACTICE_KEYS)}, got {_show(body)}"
            )
            continue
        report_unknown_keys(path, body, PRACTICE_KEYS, problems)
        parsed.practices[pid] = _check_settings(body.get("settings"), f"{path}.settings", problems)
        parsed.practice_payers[pid] = _check_payers(body.get("payers"), f"{path}.payers", problems)
        parsed.practice_sections[pid] = {k: body[k] for k in RESERVED_PRACTICE_KEYS if k in body}

    problems.raise_if_any(f"invalid configuration ({source})")
    return parsed


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key written twice in one mapping.

    PyYAML would silently keep the last value, hiding a typo'd override.
    """


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        if isinstance(key, Hashable):
            seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# ------------------------------------------------------------------ Settings


def _text_or_none(value: object) -> str | None:
    """A scalar id or name as text; None, NA and NaN as None."""
    if value is None:
        return None
    if not isinstance(value, str):
        # pd.NA and NaN (and NaT) compare unequal to themselves, or refuse to compare.
        try:
            if bool(value != value):
                return None
        except TypeError:
            return None
    return str(value)


class Settings:
    """The validated configuration: resolves the rulebook's settings per practice and payer."""

    def __init__(self, parsed: _Parsed, source: str) -> None:
        self._parsed = parsed
        self.source = source
        self._cache: dict[tuple[str | None, str | None], RuleSettings] = {}

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: str | Path | None = None) -> Settings:
        """Read and validate a configuration file.

        With no path, the file named by the environment variable
        ``METAUDIT_CONFIG`` is read, and without that the rulebook defaults apply.
        """
        if path is None:
            env = config.config_file()
            if not env:
                return cls.from_dict({}, source="rulebook defaults")
            path = env
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SettingsError(f"configuration file {file} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"configuration file {file} cannot be read: {exc}") from exc
        try:
            # A SafeLoader subclass: plain data only, no Python objects.
            data = yaml.load(text, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as exc:
            raise SettingsError(f"configuration file {file} is not valid YAML: {exc}") from exc
        settings = cls.from_dict(data, source=str(file))
        log.info("settings read from %s", file)
        return settings

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, source: str = "configuration") -> Settings:
        """Validate a configuration already read into Python objects."""
        return cls(_parse(data, source), source)

    # -------------------------------------------------------------- raw parts

    @property
    def practice_ids(self) -> tuple[str, ...]:
        """The practices the configuration names."""
        return tuple(self._parsed.practices)

    @property
    def sections(self) -> dict[str, Any]:
        """The raw top-level sections kept for later parts: email, packets, access."""
        return dict(self._parsed.sections)

    def practice_section(self, practice_id: str) -> dict[str, Any]:
        """The raw per-practice keys kept for later parts (name, compliance_leads ...)."""
        return dict(self._parsed.practice_sections.get(practice_id, {}))

    @property
    def statement_timeout_s(self) -> float:
        """How long one statement reading the source may run or wait for a lock (seconds)."""
        return self._parsed.statement_timeout_s

    @property
    def default_timezone(self) -> str:
        """The time zone for a practice whose record names none (``defaults`` applied)."""
        return self.for_practice(None).default_timezone

    def judging(self, practice_id: str) -> dict[str, Any]:
        """Every configured value that can change how a practice's records are judged:
        the defaults, the payers, and the practice's own settings and payers (plain
        data; a packet's evidence digest covers it, so a change rebuilds the packets)."""
        p = self._parsed
        return {
            "defaults": p.defaults,
            "payers": p.payers,
            "practice": p.practices.get(practice_id, {}),
            "practice_payers": p.practice_payers.get(practice_id, {}),
        }

    # -------------------------------------------------------------- resolving

    def _resolve(self, practice_id: str | None, payer: str | None) -> RuleSettings:
        key = (practice_id, payer)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        p = self._parsed
        merged: dict[str, Any] = dict(p.defaults)
        if practice_id is not None:
            merged.update(p.practices.get(practice_id, {}))
        if payer is not None:
            merged.update(p.payers.get(payer, {}))
            if practice_id is not None:
                merged.update(p.practice_payers.get(practice_id, {}).get(payer, {}))
        resolved = dataclasses.replace(DEFAULTS, **merged)
        self._cache[key] = resolved
        return resolved

    def for_practice(self, practice_id: str | None) -> RuleSettings:
        """The settings of a practice (defaults and top-level payers aside).

        ``None`` (or NA) or a practice the file does not name gets the ``defaults``.
        """
        return self._resolve(_text_or_none(practice_id), None)

    def for_payer(self, practice_id: str | None, payer_name: str | None) -> RuleSettings:
        """The settings of a practice for claims to one payer (names ignore case)."""
        name = _text_or_none(payer_name)
        key = payer_key(name) if name is not None else None
        return self._resolve(_text_or_none(practice_id), key or None)

    # -------------------------------------------------------------- vectorised

    def _groups(
        self, df: pd.DataFrame, payer: pd.Series | None
    ) -> tuple[np.ndarray, list[RuleSettings]]:
        """Codes (one per row) into the list of distinct resolved settings.

        Resolution happens once per distinct (practice, payer) pair, never per row.
        """
        import numpy as np
        import pandas as pd

        if "practice_id" not in df.columns:
            raise KeyError("the frame has no practice_id column to resolve settings by")
        p_codes, p_uniques = pd.factorize(df["practice_id"], use_na_sentinel=True)
        if payer is None:
            y_codes = np.full(len(df), -1, dtype=np.int64)
            y_uniques: Any = []
        else:
            if not payer.index.equals(df.index):
                payer = payer.reindex(df.index)
            # Payer names repeat: fold each distinct stored name once, not every row.
            raw_codes, raw_names = pd.factorize(payer.astype("string"), use_na_sentinel=True)
            names = pd.Series(raw_names, dtype="string").str.strip().str.casefold()
            names = names.mask(names == "")
            folded_codes, y_uniques = pd.factorize(names, use_na_sentinel=True)
            y_codes = np.append(folded_codes, -1)[raw_codes]
        width = len(y_uniques) + 1
        combined = (np.asarray(p_codes, dtype=np.int64) + 1) * width + (
            np.asarray(y_codes, dtype=np.int64) + 1
        )
        codes, pairs = pd.factorize(combined)
        # Plain lists: indexing an Arrow-backed Index item by item costs microseconds each.
        practice_names = [str(value) for value in list(p_uniques)]
        payer_names = [str(value) for value in list(y_uniques)]
        resolved: list[RuleSettings] = []
        for pair in pairs.tolist():
            pi, yi = divmod(int(pair), width)
            pid = practice_names[pi - 1] if pi > 0 else None
            pname = payer_names[yi - 1] if yi > 0 else None
            resolved.append(self._resolve(pid, pname))
        return np.asarray(codes), resolved

    def _spec(self, name: str, payer: pd.Series | None) -> SettingSpec:
        try:
            spec = SETTINGS[name]
        except KeyError:
            raise KeyError(
                f"unknown setting {name!r}{_did_you_mean(name, list(SETTINGS))}"
            ) from None
        if payer is not None and not spec.payer:
            raise ValueError(f"setting {name!r} is not payer-scoped; call without payer=")
        return spec

    def column(self, df: pd.DataFrame, name: str, payer: pd.Series | None = None) -> pd.Series:
        """The resolved value of setting ``name`` for each row of ``df``.

        Rows are resolved by ``df["practice_id"]`` (NA: the defaults) and, for a
        payer-scoped setting, by the payer names in ``payer`` (aligned with df).
        Numbers come as Int64, words as string, lists as tuples (object).
        """
        import numpy as np
        import pandas as pd

        spec = self._spec(name, payer)
        codes, resolved = self._groups(df, payer)
        values = np.empty(len(resolved), dtype=object)
        for i, rs in enumerate(resolved):
            values[i] = getattr(rs, name)  # item by item: tuples must stay whole
        # Type the few distinct values, then spread them to the rows.
        if spec.kind in (DAYS, COUNT):
            typed: Any = pd.array(values, dtype="Int64")
        elif spec.kind in (CHOICE, TIMEZONE):
            typed = pd.array(values, dtype="string")
        else:
            typed = values
        picked = typed.take(np.asarray(codes, dtype=np.intp)) if len(df) else typed[:0]
        return pd.Series(picked, index=df.index, name=name)

    def _by_value(
        self, df: pd.DataFrame, name: str, payer: pd.Series | None
    ) -> list[tuple[tuple[str, ...], np.ndarray]]:
        """(resolved list, row mask) for each distinct resolved list of ``name``."""
        import numpy as np

        codes, resolved = self._groups(df, payer)
        by_value: dict[tuple[str, ...], list[int]] = {}
        for i, rs in enumerate(resolved):
            by_value.setdefault(getattr(rs, name), []).append(i)
        return [(value, np.isin(codes, idx)) for value, idx in by_value.items()]

    def isin(
        self, df: pd.DataFrame, column: str, name: str, payer: pd.Series | None = None
    ) -> pd.Series:
        """Whether ``df[column]`` is in the resolved code list ``name``, row by row.

        Values are trimmed and upper-cased (lower-cased for plan types and
        condition categories) before comparing; NA is never in the list.
        """
        import numpy as np
        import pandas as pd

        spec = self._spec(name, payer)
        if spec.kind not in (CODES, VALUES):
            raise ValueError(f"setting {name!r} is not a code list")
        fold: Callable[[pd.Series], pd.Series] = (
            (lambda s: s.str.upper()) if spec.kind == CODES else (lambda s: s.str.lower())
        )
        values = fold(df[column].astype("string").str.strip())
        result = np.zeros(len(df), dtype=bool)
        for codes, mask in self._by_value(df, name, payer):
            hit = values[mask].isin(codes).fillna(False).to_numpy(dtype=bool)
            result[mask] = hit
        return pd.Series(result, index=df.index, name=column)

    def regex_any(self, df: pd.DataFrame, column: str, name: str) -> pd.Series:
        """Whether any pattern of setting ``name`` matches ``df[column]`` (case-insensitive).

        Patterns are searched anywhere in the text, as written; NA is False.
        """
        import numpy as np
        import pandas as pd

        spec = self._spec(name, None)
        if spec.kind != PATTERNS:
            raise ValueError(f"setting {name!r} is not a list of patterns")
        text = df[column].astype("string")
        result = np.zeros(len(df), dtype=bool)
        for patterns, mask in self._by_value(df, name, None):
            # Notes repeat: search each distinct text once and spread the verdicts.
            codes, distinct = pd.factorize(text[mask], use_na_sentinel=True)
            found = _search_any(pd.Series(distinct, dtype="string"), patterns)
            result[mask] = np.append(found, False)[codes]
        return pd.Series(result, index=df.index, name=column)


def _search_any(text: pd.Series, patterns: tuple[str, ...]) -> np.ndarray:
    """Rows of ``text`` where any pattern matches, with Python's ``re``.

    Passing flags makes pandas use ``re`` even on Arrow-backed strings (whose
    own engine, RE2, reads some patterns differently).
    """
    import numpy as np

    combined = "|".join(f"(?:{p})" for p in patterns)
    try:
        re.compile(combined, re.IGNORECASE)
        parts = [combined]
    except re.error:
        # A pattern with global inline flags cannot sit inside an alternation.
        parts = list(patterns)
    hit = np.zeros(len(text), dtype=bool)
    with warnings.catch_warnings():
        # Groups in a pattern (treat(s|ed|ing)?) only group; pandas warns they are not extracted.
        warnings.filterwarnings("ignore", "This pattern is interpreted", UserWarning)
        for pattern in parts:
            found = text.str.contains(pattern, flags=re.IGNORECASE, regex=True, na=False)
            hit |= found.fillna(False).to_numpy(dtype=bool)
    return hit
