"""Waivers: `[[security.ignore]]` entries of wormhole-ci.toml, each scoped, reasoned and expiring.

Part of the model (the manifest holds them): it imports no capability. What a waiver is
matched against is given as plain values; `security.policy` matches findings with it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from wormhole_ci.errors import ManifestError
from wormhole_ci.jsonish import as_dict, as_list

_KEYS = {"id", "service", "path", "package", "reason", "expires"}


@dataclass(frozen=True)
class IgnoreEntry:
    """One waiver: a finding id in a scope, why, and until when."""

    id: str
    reason: str
    expires: dt.date
    service: str = ""
    path: str = ""
    """A glob over the finding's file path (relative to the monorepo root)."""
    package: str = ""
    """`name` or `name@version`."""

    @property
    def label(self) -> str:
        """How reports name this entry."""
        scope = ", ".join(
            f"{k}={v}"
            for k, v in (("service", self.service), ("path", self.path), ("package", self.package))
            if v
        )
        return f"{self.id} ({scope}; expires {self.expires.isoformat()})"

    def expired(self, today: dt.date) -> bool:
        """True from the day after `expires` on."""
        return today > self.expires

    def covers(
        self,
        ids: Collection[str],
        *,
        service: str,
        path: str | None = None,
        package: tuple[str, str] | None = None,
    ) -> bool:
        """True when one of `ids` (a rule id and its aliases) is this entry's id and the
        finding's service, file `path` or (name, version) `package` is inside the scope."""
        if self.id not in ids:
            return False
        if self.service and self.service != service:
            return False
        if self.path and not (path is not None and fnmatch.fnmatch(path, self.path)):
            return False
        if self.package:
            if package is None:
                return False
            name, _, version = self.package.partition("@")
            if name != package[0] or (version and version != package[1]):
                return False
        return True


def parse_ignores(raw: object, path: Path) -> tuple[IgnoreEntry, ...]:
    """Validate the `security.ignore` array; errors name the entry and the field."""
    entries: list[IgnoreEntry] = []
    for index, item in enumerate(as_list(raw) or []):
        where = f"{path}: security.ignore[{index}]"
        table = as_dict(item)
        if table is None:
            raise ManifestError(f"{where}: each entry is a table ([[security.ignore]])")
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ManifestError(
                f"{where}: unknown key {unknown[0]}; allowed here: {', '.join(sorted(_KEYS))}"
            )
        values = {k: table.get(k) for k in ("id", "service", "path", "package", "reason")}
        for key, value in values.items():
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ManifestError(f"{where}.{key} must be a non-empty string")
        if not values["id"]:
            raise ManifestError(f"{where}.id is required: the rule or advisory id to waive")
        if not values["reason"]:
            raise ManifestError(f"{where}.reason is required: say why this finding is accepted")
        if not any(values[k] for k in ("service", "path", "package")):
            raise ManifestError(
                f"{where}: give a scope (service, path or package); a waiver never applies everywhere"
            )
        expires = table.get("expires")
        if not isinstance(expires, dt.date) or isinstance(expires, dt.datetime):
            raise ManifestError(
                f"{where}.expires is required: a TOML date like 2026-12-31 (unquoted)"
            )
        entries.append(
            IgnoreEntry(
                id=str(values["id"]),
                reason=str(values["reason"]),
                expires=expires,
                service=str(values["service"] or ""),
                path=str(values["path"] or ""),
                package=str(values["package"] or ""),
            )
        )
    return tuple(entries)
