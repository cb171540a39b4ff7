"""Who may see which practice's packets: the ``access`` part of the configuration.

Airflow authenticates the user; this module decides what the user may see.
Airflow's own permissions cannot say it: its auth managers know DAGs, views and
roles, not practices (and the default one lets every *viewer* through any
custom view). So the grants live in the configuration file, next to the
practices they concern::

    access:
      admins: [dana]            # user names: every practice, the download trail, rebuilds
      admin_roles: [admin]      # auth-manager roles counted as admins (default: [admin])
    practices:
      PR-1:
        packet_viewers: [owner1, owner2]   # user names who may download PR-1's packets

A user who is neither an admin nor a viewer of any practice sees an empty list:
nothing is granted by default. Names compare exactly (Airflow user names are
case-sensitive), roles ignoring case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metaudit.errors import Problems, SettingsError
from metaudit.spec.sections import CUSTOM, Field, show, validate_section

if TYPE_CHECKING:
    from metaudit.spec.settings import Settings

DEFAULT_ADMIN_ROLES = ("admin",)


@dataclass(frozen=True)
class Viewer:
    """The signed-in Airflow user as this module sees them: a name and their roles."""

    name: str
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AccessPolicy:
    """The grants of one configuration; see the module docstring."""

    admins: frozenset[str] = frozenset()
    admin_roles: frozenset[str] = frozenset(DEFAULT_ADMIN_ROLES)
    viewers: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def is_admin(self, viewer: Viewer) -> bool:
        return viewer.name in self.admins or bool(viewer.roles & self.admin_roles)

    def may_see(self, viewer: Viewer, practice_id: str) -> bool:
        if self.is_admin(viewer):
            return True
        return viewer.name in self.viewers.get(practice_id, frozenset())

    def practices_of(self, viewer: Viewer, known: Iterable[str]) -> list[str]:
        """The practices among ``known`` the viewer may see, sorted."""
        return sorted(p for p in set(known) if self.may_see(viewer, p))


def _names(value: Any, path: str, problems: Problems) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, list):
        problems.add(path, f"must be a list of user names, got {show(value)}")
        return frozenset()
    names = set()
    for item in value:
        if not isinstance(item, str) or not item.strip():
            problems.add(path, f"{show(item)} is not a user name")
            continue
        names.add(item.strip())
    return frozenset(names)


def _roles(value: Any, path: str, problems: Problems) -> frozenset[str]:
    # Roles compare ignoring case (auth managers spell them as they like).
    return frozenset(role.lower() for role in _names(value, path, problems))


ACCESS_FIELDS = (
    Field("admins", CUSTOM, default=frozenset(), check=_names),
    # Written as null it grants no role; left out, Airflow's admin role counts.
    Field(
        "admin_roles",
        CUSTOM,
        default=frozenset(DEFAULT_ADMIN_ROLES),
        check=_roles,
        null_is_default=False,
    ),
)
# A practice's access key (its other keys belong to other modules).
PRACTICE_FIELDS = (Field("packet_viewers", CUSTOM, default=frozenset(), check=_names),)


def access_policy(settings: Settings) -> AccessPolicy:
    """Validate the ``access`` section and every practice's ``packet_viewers``.

    Every problem is reported at once, by path, in one :class:`SettingsError`.
    """
    section = settings.sections.get("access")
    if section is not None and not isinstance(section, Mapping):
        # Said on its own, in the words operators know: nothing else can be checked.
        keys = ", ".join(field.name for field in ACCESS_FIELDS)
        raise SettingsError(
            f"invalid configuration ({settings.source}): access must be a mapping with "
            f"{keys}, got {show(section)}"
        )
    values, problems = validate_section("access", section, ACCESS_FIELDS)
    viewers = {
        pid: validate_section(
            f"practices.{pid}",
            settings.practice_section(pid),
            PRACTICE_FIELDS,
            problems,
            report_unknown=False,
        )[0]["packet_viewers"]
        for pid in settings.practice_ids
    }
    problems.raise_if_any(f"invalid configuration ({settings.source})")
    return AccessPolicy(
        admins=values["admins"],
        admin_roles=values["admin_roles"],
        viewers={pid: names for pid, names in viewers.items() if names},
    )


def viewer_of(user: Any) -> Viewer:
    """The :class:`Viewer` of an Airflow auth-manager user.

    SimpleAuthManager users carry one ``role`` (a string); FAB users a list of
    ``roles`` with names; other managers may have neither (then no role counts).
    """
    roles: set[str] = set()
    role = getattr(user, "role", None)
    if isinstance(role, str) and role:
        roles.add(role.lower())
    for item in getattr(user, "roles", None) or ():
        name = getattr(item, "name", item)
        if isinstance(name, str) and name:
            roles.add(name.lower())
    return Viewer(name=str(user.get_name()), roles=frozenset(roles))
