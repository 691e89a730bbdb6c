"""The drift report: each difference found, the command that fixes it, and what was read."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Area(StrEnum):
    """What `drift --only` can limit the comparison to."""

    DATABASE = "database"
    HASURA = "hasura"
    COOLIFY = "coolify"


@dataclass(frozen=True)
class DriftItem:
    """One difference between the live environment and the repository."""

    area: Area
    kind: str
    """e.g. pending-migration, unknown-migration, edited-migration, failed-migration,
    schema-drift, metadata-changed, metadata-inconsistent, image-tag."""
    subject: str
    """What drifted: a migration's folder name, a table.column, a metadata object, an app."""
    detail: str
    fix: str
    """The command (or action) that brings the environment back to the repository."""


@dataclass
class AreaResult:
    """One area's comparison: what was read, what differs, or why it could not be read."""

    area: Area
    checked: list[str] = field(default_factory=list[str])
    """What was read, one line each (e.g. `_prisma_migrations: 2 rows`)."""
    items: list[DriftItem] = field(default_factory=list[DriftItem])
    error: str | None = None
    """Set when the area could not be compared (exit 2): the message says what to fix."""


@dataclass
class DriftReport:
    """Every compared area of one environment."""

    environment: str
    areas: list[AreaResult] = field(default_factory=list[AreaResult])

    @property
    def items(self) -> list[DriftItem]:
        return [item for area in self.areas for item in area.items]

    @property
    def exit_code(self) -> int:
        """0 no drift, 1 drift, 2 an area could not be compared."""
        if any(a.error for a in self.areas):
            return 2
        return 1 if self.items else 0

    @property
    def verdict(self) -> str:
        return {0: "clean", 1: "drift", 2: "error"}[self.exit_code]

    def to_json(self) -> str:
        data = asdict(self)
        # `outcome`: what the Dagger job's `status` file carries (jsonish.outcome_of)
        data["outcome"] = self.verdict
        return json.dumps(data, indent=2)

    def to_markdown(self) -> str:
        lines = [f"## Drift: {self.environment}: {self.verdict}", ""]
        for area in self.areas:
            if area.error:
                status = "could not compare"
            elif area.items:
                status = f"{len(area.items)} drifted"
            else:
                status = "matches the repository"
            lines.append(f"### {area.area}: {status}")
            lines.append("")
            lines.extend(f"- read: {c}" for c in area.checked)
            if area.error:
                lines.append(f"- **error**: {area.error}")
            if area.items:
                lines += ["", "| kind | subject | detail | fix |", "|---|---|---|---|"]
                lines.extend(
                    f"| {i.kind} | `{_cell(i.subject)}` | {_cell(i.detail)} | `{_cell(i.fix)}` |"
                    for i in area.items
                )
            lines.append("")
        return "\n".join(lines)


def _cell(text: str) -> str:
    """A table cell: pipes escaped, one line."""
    return text.replace("|", "\\|").replace("\n", " ")
