"""`validate-delivery` on the example's operations configuration with the real promtool and
amtool: the example is clean, and one defect per validator family gives exactly its problem."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from tests.observability.conftest import debian_tool
from wormhole_ci.delivery.tools import INSTALL
from wormhole_ci.delivery.validate import validate_delivery
from wormhole_ci.errors import ManifestError
from wormhole_ci.manifest import load_manifest

pytestmark = pytest.mark.ops

OBS = "deploy/observability"
RUNBOOK_URL = "https://github.com/wormhole/wormhole/blob/main/docs/runbooks/high-error-rate.md"


@pytest.fixture(autouse=True)
def tools() -> None:
    """Skip (fail under CI=true) without Debian's promtool or amtool."""
    debian_tool("promtool", "prometheus")
    debian_tool("amtool", "prometheus-alertmanager")


@pytest.fixture
def monorepo(tmp_path: Path) -> Path:
    """The example's manifest, deploy/ and runbooks; the other services' directories empty
    (loading the manifest needs them to exist, this validation reads none of them)."""
    root = tmp_path / "wormhole"
    root.mkdir()
    shutil.copy(EXAMPLE / "wormhole-ci.toml", root)
    shutil.copytree(EXAMPLE / "deploy", root / "deploy")
    shutil.copytree(EXAMPLE / "docs" / "runbooks", root / "docs" / "runbooks")
    for service in ("api", "web", "runner", "hasura"):
        (root / service).mkdir()
    return root


def cli(
    root: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wormhole_ci", "validate-delivery", "--source", str(root), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def problems(root: Path) -> list[str]:
    return list(validate_delivery(load_manifest(root), "delivery").problems)


def edit(relative: str, old: str, new: str) -> Callable[[Path], None]:
    def inject(root: Path) -> None:
        path = root / relative
        text = path.read_text()
        assert old in text, f"{relative} no longer contains {old!r}: update the defect"
        path.write_text(text.replace(old, new, 1))

    return inject


def test_the_example_is_clean(monorepo: Path) -> None:
    done = cli(monorepo)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("checked deploy/observability: 6 rule files (")
    assert lines[1] == "checked deploy/coolify: the Compose stack and its env examples"
    assert lines[-1] == "delivery configuration of 'delivery': no problems"
    assert done.stderr == ""


def drop_runbook_url(root: Path) -> None:
    """The critical ApiHighErrorRate loses its runbook_url (and its unit test expects that)."""
    line = f"          runbook_url: {RUNBOOK_URL}\n"
    edit(f"{OBS}/prometheus/rules/api.yml", line, "")(root)
    edit(f"{OBS}/prometheus/tests/api_test.yml", f"    runbook_url: {RUNBOOK_URL}\n", "\n")(root)


DEFECTS: dict[str, tuple[Callable[[Path], object], list[str]]] = {
    "alert without runbook_url": (
        drop_runbook_url,
        [
            f"{OBS}/prometheus/rules/api.yml: alert ApiHighErrorRate (critical): no "
            "annotations.runbook_url; add a link to its runbook (docs/runbooks/<name>.md)"
        ],
    ),
    "runbook not linked": (
        lambda root: (root / "docs/runbooks/orphan.md").write_text("# Runbook: orphan\n"),
        [
            "docs/runbooks/orphan.md: linked by no alert's runbook_url (and named by no "
            "wormhole-ci message); link it from the alert it is for, or delete it"
        ],
    ),
    "runbook_url naming a missing runbook": (
        lambda root: (root / "docs/runbooks/high-error-rate.md").rename(
            root / "docs/runbooks/errors.md"
        ),
        [
            f"{OBS}/prometheus/rules/api.yml: alert ApiHighErrorRate ({severity}): runbook_url "
            f"{RUNBOOK_URL} names high-error-rate.md, which is not in docs/runbooks/; write "
            "the runbook or fix the link"
            for severity in ("critical", "warning")
        ]
        + [
            "docs/runbooks/errors.md: linked by no alert's runbook_url (and named by no "
            "wormhole-ci message); link it from the alert it is for, or delete it"
        ],
    ),
    "broken PromQL in a dashboard": (
        edit(
            f"{OBS}/grafana/dashboards/database.json",
            '"expr": "redis_connected_clients"',
            '"expr": "sum(redis_connected_clients"',
        ),
        [
            f"{OBS}/grafana/dashboards/database.json: panel 'Connected clients': query does "
            "not parse: 1:28: parse error: unclosed left parenthesis; fix the PromQL (in "
            "grafana/generate.py when the dashboards are generated): sum(redis_connected_clients"
        ],
    ),
    "metric not in metrics.txt": (
        edit(
            f"{OBS}/metrics.txt",
            "pg_stat_database_deadlocks                  counter    postgres-exporter\n",
            "",
        ),
        [
            f"{OBS}/grafana/dashboards/database.json: panel 'Deadlocks' uses metric "
            f"pg_stat_database_deadlocks, which {OBS}/metrics.txt does not declare; add "
            "`pg_stat_database_deadlocks <counter|gauge|histogram|summary> <scrape job>` "
            "there (or fix the name)"
        ],
    ),
    "amtool-invalid route": (
        edit(f"{OBS}/alertmanager/alertmanager.yml", "receiver: slack-backend", "receiver: slack"),
        [
            f"{OBS}/alertmanager/alertmanager.yml: amtool check-config failed; fix what it "
            f"reports:\n    Checking '{OBS}/alertmanager/alertmanager.yml'  FAILED: undefined "
            'receiver "slack" used in route\n    amtool: error: failed to validate 1 file(s)'
        ],
    ),
    "compose variable missing from an env example": (
        edit("deploy/coolify/staging.env.example", "WEB_MEMORY=256M\n", ""),
        [
            "deploy/coolify/staging.env.example: WEB_MEMORY is read by "
            "deploy/coolify/docker-compose.yml but not listed; add `WEB_MEMORY=` with this "
            "environment's value (`# WEB_MEMORY=` when Coolify generates it)"
        ],
    ),
    "failing promtool unit test": (
        edit(
            f"{OBS}/prometheus/tests/api_test.yml",
            "exp_labels: { service: api, severity: critical, team: backend }",
            "exp_labels: { service: api, severity: critical, team: workflows }",
        ),
        [
            f"{OBS}/prometheus/tests/api_test.yml: promtool test rules failed; fix the rule "
            "or the test:"
        ],
    ),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_gives_exactly_its_problem(monorepo: Path, defect: str) -> None:
    inject, expected = DEFECTS[defect]
    inject(monorepo)
    found = problems(monorepo)
    if defect == "failing promtool unit test":
        # promtool's report follows the first line: the alert, what it expected and got
        (problem,) = found
        first, *details = problem.splitlines()
        assert [first] == expected
        assert "alertname: ApiHighErrorRate" in problem
        assert 'team="workflows"' in problem
        assert all(line.startswith("    ") for line in details)
    else:
        assert found == expected


def test_problems_exit_1_and_are_printed(monorepo: Path) -> None:
    inject, expected = DEFECTS["compose variable missing from an env example"]
    inject(monorepo)
    done = cli(monorepo, "--service", "delivery")
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected[0] in done.stdout.splitlines()
    assert done.stderr.strip() == "delivery configuration of 'delivery': 1 problems"


def test_missing_directories_are_problems(monorepo: Path) -> None:
    shutil.rmtree(monorepo / "deploy" / "coolify")
    shutil.rmtree(monorepo / "docs" / "runbooks")
    assert problems(monorepo) == [
        "docs/runbooks: runbooks directory not found; create it or set the delivery "
        "service's `runbooks` in wormhole-ci.toml",
        "deploy/coolify: not found; it holds the Coolify stack (docker-compose.yml) the "
        "delivery validation checks",
    ]


def test_a_missing_tool_fails_naming_it_and_the_package(monorepo: Path, tmp_path: Path) -> None:
    """Without promtool the validation cannot pass by not running: exit 2 with the fix."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    amtool = shutil.which("amtool")
    assert amtool is not None
    (bin_dir / "amtool").symlink_to(amtool)
    done = cli(monorepo, env={**os.environ, "PATH": str(bin_dir)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "validate-delivery needs promtool, not found on PATH; install them (Debian: "
        f"`{INSTALL}`) and retry"
    ) in done.stderr
    assert INSTALL == "apt-get install prometheus prometheus-alertmanager"


def test_bad_input_exits_2(monorepo: Path) -> None:
    wrong = cli(monorepo, "--service", "hasura")
    assert wrong.returncode == 2
    assert "service 'hasura' is of kind hasura, not delivery; pass --service delivery" in (
        wrong.stderr
    )
    unknown = cli(monorepo, "--service", "ops")
    assert unknown.returncode == 2
    assert "no service named 'ops'" in unknown.stderr
    with pytest.raises(ManifestError, match="not delivery"):
        validate_delivery(load_manifest(monorepo), "api")


def test_a_delivery_path_that_does_not_exist_is_a_manifest_error(monorepo: Path) -> None:
    manifest = monorepo / "wormhole-ci.toml"
    manifest.write_text(manifest.read_text().replace('path = "deploy"', 'path = "ops"'))
    done = cli(monorepo)
    assert done.returncode == 2
    assert "services.delivery.path: directory 'ops' does not exist" in done.stderr
