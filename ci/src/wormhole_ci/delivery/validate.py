"""Every delivery validator on one manifest service: what `validate-delivery` runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wormhole_ci.delivery import alertmanager, dashboards, prometheus
from wormhole_ci.delivery.documents import InvalidFile
from wormhole_ci.delivery.promql import InventoryEntry, read_inventory, undeclared
from wormhole_ci.delivery.rules import alert_problems, read_rules, shown_path
from wormhole_ci.delivery.runbooks import runbook_problems
from wormhole_ci.delivery.stack import stack_problems
from wormhole_ci.delivery.tools import Tools, find_tools
from wormhole_ci.errors import ManifestError
from wormhole_ci.manifest import DEFAULT_RUNBOOKS, MANIFEST_NAME, Manifest, ServiceKind


@dataclass(frozen=True)
class DeliveryReport:
    """What one validation found, and what it looked at."""

    service: str
    problems: tuple[str, ...]
    """Each names its file (and alert, receiver, panel or variable) and the fix."""
    checked: tuple[str, ...]
    """One line per family of files checked, for the summary."""


def validate_delivery(
    manifest: Manifest, service: str, tools: Tools | None = None
) -> DeliveryReport:
    """Run every validator on the delivery service `service`; problems are data, not errors.

    ManifestError when `service` is not a delivery service; ProvisionError when promtool or
    amtool is not installed (the checks would otherwise pass by not running).
    """
    spec = manifest.service(service)
    if spec.kind is not ServiceKind.DELIVERY:
        delivery = [s.name for s in manifest.services if s.kind is ServiceKind.DELIVERY]
        raise ManifestError(
            f"{manifest.root / MANIFEST_NAME}: service {service!r} is of kind {spec.kind}, not "
            f"delivery; pass --service {delivery[0] if delivery else 'NAME of a delivery service'}"
        )
    tools = tools or find_tools()
    root = manifest.root
    base = root / spec.path
    runbooks = root / (spec.runbooks or DEFAULT_RUNBOOKS)
    problems: list[str] = []
    checked: list[str] = []
    observability = base / "observability"
    if observability.is_dir():
        checked += _observability(tools, observability, runbooks, root, problems)
    else:
        problems.append(
            _missing(observability, root, "the Prometheus, Alertmanager and Grafana configuration")
        )
    coolify = base / "coolify"
    if coolify.is_dir():
        problems += stack_problems(coolify, root)
        checked.append(f"{shown_path(coolify, root)}: the Compose stack and its env examples")
    else:
        problems.append(_missing(coolify, root, "the Coolify stack (docker-compose.yml)"))
    return DeliveryReport(service, tuple(problems), tuple(checked))


def _observability(
    tools: Tools, directory: Path, runbooks: Path, root: Path, problems: list[str]
) -> list[str]:
    rules = sorted((directory / "prometheus" / "rules").glob("*.yml"))
    tests = sorted((directory / "prometheus" / "tests").glob("*_test.yml"))
    config = directory / "prometheus" / "prometheus.yml"
    if not rules:
        problems.append(
            _missing(directory / "prometheus" / "rules" / "*.yml", root, "the alert rules")
        )
    if config.is_file():
        problems += prometheus.config_problems(tools.promtool, config, rules, root)
    else:
        problems.append(_missing(config, root, "the Prometheus configuration"))
    problems += prometheus.rules_problems(tools.promtool, rules, root)
    problems += prometheus.unit_test_problems(tools.promtool, tests, root)
    try:
        alerts, exprs = read_rules(rules, root)
    except InvalidFile as exc:
        problems.append(str(exc))
        alerts, exprs = [], []
    problems += alert_problems(alerts)
    problems += runbook_problems(alerts, runbooks, shown_path(runbooks, root))
    am_config = directory / "alertmanager" / "alertmanager.yml"
    if am_config.is_file():
        problems += alertmanager.config_problems(tools.amtool, am_config, root)
    else:
        problems.append(_missing(am_config, root, "the Alertmanager configuration"))
    inventory_path = directory / "metrics.txt"
    shown_inventory = shown_path(inventory_path, root)
    inventory: list[InventoryEntry] | None = None
    try:
        inventory = read_inventory(inventory_path, shown_inventory)
    except InvalidFile as exc:
        problems.append(str(exc))
    queries, unreadable = dashboards.read_queries(
        sorted((directory / "grafana" / "dashboards").glob("*.json")), root
    )
    problems += unreadable
    problems += dashboards.parse_problems(tools.promtool, queries)
    if inventory is not None:
        for rule in exprs:
            problems += undeclared(
                f"{rule.shown}: {rule.rule}", rule.expr, inventory, shown_inventory
            )
        problems += dashboards.metric_problems(queries, inventory, shown_inventory)
    return [
        f"{shown_path(directory, root)}: {len(rules)} rule files ({len(alerts)} alerts), "
        f"{len(tests)} promtool unit-test files, the Alertmanager configuration, "
        f"{len(queries)} dashboard queries, runbooks in {shown_path(runbooks, root)}"
    ]


def _missing(path: Path, root: Path, what: str) -> str:
    return f"{shown_path(path, root)}: not found; it holds {what} the delivery validation checks"
