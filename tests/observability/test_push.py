"""Release, migrate and deploy outcomes pushed to the real Pushgateway (Debian's
prometheus-pushgateway on a loopback port) and read back from its /metrics, as Prometheus
scrapes them: names, labels, values, the failure counter across runs, best-effort pushes,
credentials and database URLs nowhere; and DeployRepeatedlyFailing firing in a real Prometheus."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from tests.deploy.coolify_server import CoolifyServer, run_coolify
from tests.deploy.healthz import Health, run_health
from tests.deploy.test_rollout import (
    PREVIOUS,
    SERVICES,
    SHA,
    TOKEN,
    cli_deploy,
    environment,
    serve_what_was_deployed,
)
from tests.observability.conftest import OBSERVABILITY, RUNBOOK_BASE, RUNBOOKS, debian_tool
from tests.observability.gateway import Gateway, free_port, run_pushgateway
from tests.observability.services import wait_until
from tests.observability.stack import firing, live_prometheus_config, prometheus, query
from tests.release.test_machine import SECRET, Steps
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.manifest import DeployTarget, Environment, ObservabilityTarget
from wormhole_ci.observability.push import Command, Pushgateway, RunSignal, pushgateway_with
from wormhole_ci.release.machine import ReleaseMachine, Rollout, release_signals
from wormhole_ci.release.record import ReleaseOutcome, ReleaseRecord

USER, PASSWORD = "ci", "gateway-PASSW0RD-never-shown"
# bcrypt (cost 4) of PASSWORD, for the gateway's web config; made once with crypt(3).
PASSWORD_HASH = "$2b$04$UQ4i92UT7qMFags/o5D9geqsyhkcQLHnAFcKMGrWN7RwvzhMnjjl6"
DB_PASSWORD = SECRET
"""The password of the URL that Steps' failing gate puts in its message."""
DB_URL = f"postgresql://wormhole:{DB_PASSWORD}@127.0.0.1:5432/wormhole"
NAMES = (
    "wormhole_ci_last_run_timestamp_seconds",
    "wormhole_ci_last_run_success",
    "wormhole_ci_last_run_duration_seconds",
)


@pytest.fixture(scope="module")
def gateway_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with run_pushgateway(tmp_path_factory.mktemp("pushgateway")) as gateway:
        yield gateway


@pytest.fixture
def gateway(gateway_server: Gateway) -> Gateway:
    """The module's gateway, emptied before each test."""
    gateway_server.wipe()
    return gateway_server


@pytest.fixture(scope="module")
def auth_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("pushgateway-auth")
    with run_pushgateway(workdir, basic_auth=(USER, PASSWORD, PASSWORD_HASH)) as gateway:
        yield gateway


def signal(
    command: Command,
    outcome: str,
    success: bool,
    *,
    environment: str = "staging",
    sha: str = SHA[:7],
) -> RunSignal:
    return RunSignal(command, environment, outcome, success, sha, seconds=12.5)


def test_a_run_is_pushed_with_its_names_labels_and_values(gateway: Gateway) -> None:
    warnings: list[str] = []
    before = time.time()
    assert Pushgateway(gateway.url).push(
        [signal(Command.DEPLOY, "verified", True)], warnings.append
    )
    assert warnings == []
    for name in NAMES:
        labels, _ = gateway.value(name, "deploy", "staging")
        assert labels == {
            "job": "wormhole-ci",
            "command": "deploy",
            "environment": "staging",
            "instance": "",
            "outcome": "verified",
            "sha": SHA[:7],
        }
    assert gateway.value("wormhole_ci_last_run_success", "deploy", "staging")[1] == 1.0
    assert gateway.value("wormhole_ci_last_run_duration_seconds", "deploy", "staging")[1] == 12.5
    ended = gateway.value("wormhole_ci_last_run_timestamp_seconds", "deploy", "staging")[1]
    assert before - 1 <= ended <= time.time() + 1
    # the counter is one series per group: only the grouping key's labels, 0 after a success
    labels, failures = gateway.value("wormhole_ci_failures_total", "deploy", "staging")
    assert set(labels) == {"job", "command", "environment", "instance"}
    assert failures == 0.0
    text = gateway.exposition()
    assert "# TYPE wormhole_ci_failures_total counter" in text
    assert "# TYPE wormhole_ci_last_run_success gauge" in text


def test_failures_count_across_runs_and_each_push_replaces_the_last_run(gateway: Gateway) -> None:
    push = Pushgateway(gateway.url).push
    assert push([signal(Command.DEPLOY, "rolled-back", False, sha="aaaaaaa")], print)
    assert gateway.value("wormhole_ci_last_run_success", "deploy", "staging")[1] == 0.0
    assert gateway.value("wormhole_ci_failures_total", "deploy", "staging")[1] == 1.0
    assert push([signal(Command.DEPLOY, "refused", False, sha="bbbbbbb")], print)
    labels, success = gateway.value("wormhole_ci_last_run_success", "deploy", "staging")
    # the previous run's series (outcome rolled-back, sha aaaaaaa) is gone: one per group
    assert (labels["outcome"], labels["sha"], success) == ("refused", "bbbbbbb", 0.0)
    assert gateway.value("wormhole_ci_failures_total", "deploy", "staging")[1] == 2.0
    assert push([signal(Command.DEPLOY, "verified", True, sha="ccccccc")], print)
    assert gateway.value("wormhole_ci_last_run_success", "deploy", "staging")[1] == 1.0
    assert gateway.value("wormhole_ci_failures_total", "deploy", "staging")[1] == 2.0
    # another command or environment is a group of its own, counted on its own
    assert push(
        [
            signal(Command.MIGRATE, "failed", False),
            signal(Command.DEPLOY, "refused", False, environment="production"),
        ],
        print,
    )
    assert gateway.value("wormhole_ci_failures_total", "migrate", "staging")[1] == 1.0
    assert gateway.value("wormhole_ci_failures_total", "deploy", "production")[1] == 1.0
    assert gateway.value("wormhole_ci_failures_total", "deploy", "staging")[1] == 2.0


def test_an_unreachable_gateway_is_one_warning_naming_only_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    warnings: list[str] = []
    gateway = Pushgateway(url, f"{USER}:{PASSWORD}", timeout=2)
    started = time.monotonic()
    pushed = gateway.push(
        [signal(Command.RELEASE, "stopped", False), signal(Command.MIGRATE, "failed", False)],
        warnings.append,
    )
    assert not pushed and time.monotonic() - started < 5
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: the migrate, release metrics were not pushed")
    assert url in warnings[0] and "the run's outcome is unchanged" in warnings[0]
    assert PASSWORD not in warnings[0]


def test_basic_auth_pushes_and_a_wrong_credential_is_a_warning(auth_gateway: Gateway) -> None:
    warnings: list[str] = []
    run = signal(Command.RELEASE, "released", True, environment="auth")
    assert Pushgateway(auth_gateway.url, f"{USER}:{PASSWORD}").push([run], warnings.append)
    assert warnings == []
    assert auth_gateway.value("wormhole_ci_last_run_success", "release", "auth")[1] == 1.0
    assert not Pushgateway(auth_gateway.url, f"{USER}:wrong-Pa55").push([run], warnings.append)
    assert len(warnings) == 1 and "401" in warnings[0] and "wrong-Pa55" not in warnings[0]
    assert not Pushgateway(auth_gateway.url).push([run], warnings.append)
    assert len(warnings) == 2
    assert PASSWORD not in auth_gateway.exposition()


def test_a_named_credential_that_is_absent_skips_the_push_saying_so() -> None:
    env = Environment(
        name="staging",
        coolify_url="http://127.0.0.1:8000",
        registry="127.0.0.1:5000",
        registry_username=None,
        secrets={"coolify_token": "T", "database_url": "D"},
        targets=(DeployTarget("api", "app-api", None, "http://127.0.0.1:3000/healthz"),),
        observability=ObservabilityTarget("http://127.0.0.1:9091", "STAGING_PUSHGATEWAY_AUTH"),
    )
    warnings: list[str] = []
    assert pushgateway_with(env, None, warnings.append, "it is not set") is None
    assert warnings == [
        "warning: environments.staging.observability.pushgateway_auth names "
        "$STAGING_PUSHGATEWAY_AUTH but it is not set: the run's metrics are not pushed to "
        "http://127.0.0.1:9091"
    ]
    gateway = pushgateway_with(env, "u:p", warnings.append, "")
    assert gateway is not None and gateway.auth == "u:p" and "u:p" not in repr(gateway)
    assert pushgateway_with(replace(env, observability=None), None, warnings.append, "") is None
    assert len(warnings) == 1


# -- the release: its own run, and the migrate and deploy steps it ran -------------------------


@pytest.fixture
def health() -> Iterator[Health]:
    with run_health(SERVICES) as state:
        yield state


@pytest.fixture
def coolify(health: Health) -> Iterator[CoolifyServer]:
    with run_coolify({TOKEN: ("read", "write", "deploy", "read:sensitive")}) as server:
        for service in SERVICES:
            server.add_app(f"app-{service}", f"wormhole-{service}", image_tag=PREVIOUS[:7])
        serve_what_was_deployed(server, health)
        yield server


def machine_release(
    coolify: CoolifyServer, health: Health, steps: Steps, gateway: Gateway
) -> tuple[ReleaseRecord, list[str]]:
    said: list[str] = []
    machine = ReleaseMachine(
        env=environment(coolify, health),
        steps=steps,
        coolify=Coolify(coolify.url, TOKEN, poll_interval=0.05),
        rollout=Rollout(sha=SHA, image_tag=SHA[:7], poll_interval=0.05),
        say=said.append,
        save=lambda _record: None,
        hidden=(DB_PASSWORD, TOKEN),
        pushgateway=Pushgateway(gateway.url),
    )
    record = anyio.run(machine.run, ReleaseRecord(sha=SHA, environment="staging", started="t"))
    return record, said


def test_a_release_whose_deploy_fails_pushes_release_migrate_and_deploy(
    gateway: Gateway, coolify: CoolifyServer, health: Health
) -> None:
    coolify.refuse_deploys()
    for _ in range(2):
        record, said = machine_release(coolify, health, Steps(), gateway)
        assert record.outcome is ReleaseOutcome.STOPPED and record.stopped_at == "deploy"
        assert not [line for line in said if line.startswith("warning:")]
    expected = {
        "release": ("stopped", 0.0, 2.0),
        "migrate": ("passed", 1.0, 0.0),
        "deploy": ("refused", 0.0, 2.0),
    }
    for command, (outcome, success, failures) in expected.items():
        labels, value = gateway.value("wormhole_ci_last_run_success", command, "staging")
        assert (labels["outcome"], labels["sha"], value) == (outcome, SHA[:7], success), command
        assert gateway.value("wormhole_ci_failures_total", command, "staging")[1] == failures
    assert DB_PASSWORD not in gateway.exposition() and TOKEN not in gateway.exposition()


@pytest.mark.ops
def test_repeatedly_failing_releases_fire_deploy_repeatedly_failing_in_prometheus(
    gateway: Gateway, coolify: CoolifyServer, health: Health, tmp_path: Path
) -> None:
    """Debian's Prometheus scrapes the gateway with rules/delivery.yml (the live test override
    of stack.py: 6h is 6m there); three releases whose deploy fails, each scraped before the
    next, are a rise of 2 in wormhole_ci_failures_total: DeployRepeatedlyFailing fires."""
    binary = debian_tool("prometheus", "prometheus")
    rules = [OBSERVABILITY / "prometheus" / "rules" / "delivery.yml"]
    targets = {"pushgateway": gateway.url.removeprefix("http://")}
    config = live_prometheus_config(rules, targets, None, tmp_path / "prometheus")
    with prometheus(binary, config, tmp_path, free_port()) as prom:
        wait_until("the gateway scraped", lambda: query(prom.url, 'up{job="pushgateway"} == 1'))
        coolify.refuse_deploys()
        for failures in ("1", "2", "3"):
            record, _ = machine_release(coolify, health, Steps(), gateway)
            assert record.stopped_at == "deploy"
            counted = f'wormhole_ci_failures_total{{command="release"}} == {failures}'
            wait_until(f"{failures} failure(s) scraped", partial(query, prom.url, counted))
            if failures == "2":
                # one rise only: the rule's own (sped-up) expression selects nothing yet
                assert query(prom.url, rule_expr(tmp_path, "DeployRepeatedlyFailing")) == []

        def repeatedly_failing() -> list[dict[str, Any]]:
            alerts = [a for a in firing(prom.url) if a["labels"]["alertname"] == "DeployRepeatedlyFailing"]  # fmt: skip
            return alerts if len(alerts) == 2 else []

        alerts = wait_until("DeployRepeatedlyFailing firing", repeatedly_failing)
    assert sorted(a["labels"]["command"] for a in alerts) == ["deploy", "release"]
    for alert in alerts:
        labels = alert["labels"]
        assert (labels["environment"], labels["severity"], labels["team"]) == ("staging", "critical", "platform")  # fmt: skip
        assert alert["value"] in ("2e+00", "2")
        runbook = alert["annotations"]["runbook_url"]
        assert runbook == f"{RUNBOOK_BASE}failed-deploy-rollback.md"
        assert (RUNBOOKS / runbook.removeprefix(RUNBOOK_BASE)).is_file()


def rule_expr(tmp_path: Path, alertname: str) -> str:
    """The expression of `alertname` as the test's Prometheus loaded it."""
    doc = yaml.safe_load((tmp_path / "prometheus" / "rules" / "delivery.yml").read_text())
    [expr] = [r["expr"] for g in doc["groups"] for r in g["rules"] if r.get("alert") == alertname]
    return str(expr)


def test_a_release_stopped_at_migrate_pushes_no_deploy(
    gateway: Gateway, coolify: CoolifyServer, health: Health
) -> None:
    record, _ = machine_release(coolify, health, Steps(fail="migrate"), gateway)
    assert record.stopped_at == "migrate"
    # the gate's message named a database URL (redacted in the record): none of it is pushed
    assert "***" in record.step("migrate").detail
    commands = {s.labels["command"] for s in gateway.samples()}
    assert commands == {"release", "migrate"}
    labels, value = gateway.value("wormhole_ci_last_run_success", "migrate", "staging")
    assert (labels["outcome"], value) == ("failed", 0.0)
    assert DB_PASSWORD not in gateway.exposition()


def test_release_signals_take_the_migrate_jobs_outcome_and_the_deploys() -> None:
    record = ReleaseRecord(sha=SHA, environment="production", started="t")
    record.outcome = ReleaseOutcome.RELEASED
    for step in record.steps:
        step.status, step.seconds = "passed", 1.5
    record.migrations = {"outcome": "applied", "database": DB_URL}
    signals = release_signals(record, "verified", 42.0)
    assert [(s.command, s.outcome, s.success, s.seconds) for s in signals] == [
        (Command.RELEASE, "released", True, 42.0),
        (Command.MIGRATE, "applied", True, 1.5),
        (Command.DEPLOY, "verified", True, 1.5),
    ]
    record.outcome = ReleaseOutcome.REFUSED
    for step in record.steps:
        step.status = "skipped"
    assert [s.command for s in release_signals(record, "", 0.1)] == [Command.RELEASE]


# -- the command line ----------------------------------------------------------------------


def test_the_deploy_cli_pushes_its_outcome_and_keeps_its_exit_code(
    gateway: Gateway,
    coolify: CoolifyServer,
    health: Health,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    target = ObservabilityTarget(gateway.url)
    code, output, result = cli_deploy(
        coolify, health, monkeypatch, capsys, tmp_path, observability=target
    )
    assert code == 0 and result["outcome"] == "verified" and "warning" not in output
    assert gateway.value("wormhole_ci_last_run_success", "deploy", "staging")[1] == 1.0
    coolify.refuse_deploys()
    code, output, result = cli_deploy(
        coolify, health, monkeypatch, capsys, tmp_path, observability=target
    )
    assert code == 1 and output.splitlines()[-1] == f"deploy refused: staging {SHA[:7]}"
    labels, value = gateway.value("wormhole_ci_last_run_success", "deploy", "staging")
    assert (labels["outcome"], value) == ("refused", 0.0)
    assert gateway.value("wormhole_ci_failures_total", "deploy", "staging")[1] == 1.0
    assert TOKEN not in gateway.exposition()


def test_the_deploy_cli_with_an_unreachable_gateway_warns_and_exits_as_before(
    coolify: CoolifyServer,
    health: Health,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STAGING_PUSHGATEWAY_AUTH", f"{USER}:{PASSWORD}")
    target = ObservabilityTarget(url, "STAGING_PUSHGATEWAY_AUTH")
    code, output, result = cli_deploy(
        coolify, health, monkeypatch, capsys, tmp_path, observability=target
    )
    assert code == 0 and result["outcome"] == "verified"
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and url in warnings[0], output
    assert output.splitlines()[-1].startswith(f"deploy verified: staging: {SHA[:7]}")
    assert PASSWORD not in output


def test_the_migrate_cli_pushes_when_told_its_environment(
    gateway: Gateway,
    example: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The migration job itself is stubbed (tests/migrate runs it for real): what is tested
    is the command line's push after it, with the database URL nowhere in the gateway."""
    import wormhole_ci.migrate.job
    import wormhole_ci.migrate.native
    from wormhole_ci.cli import main
    from wormhole_ci.migrate.job import MigrateFailed, MigrateResult

    manifest = example / "wormhole-ci.toml"
    manifest.write_text(
        manifest.read_text()
        + f'\n[environments.staging.observability]\npushgateway_url = "{gateway.url}"\n'
    )
    outcomes = iter(("failed", "applied"))

    def job(url: object, options: object, say: object) -> MigrateResult:
        result = MigrateResult(database="127.0.0.1:5432/wormhole", service="api")
        result.outcome = next(outcomes)
        if result.outcome == "failed":
            result.error = f"prisma failed on {DB_URL}"
            raise MigrateFailed(f"migrate failed: could not reach {DB_URL}", result)
        return result

    def prepare(*args: object, **kwargs: object) -> None:
        return None

    monkeypatch.setattr(wormhole_ci.migrate.native, "prepare_migrate", prepare)
    monkeypatch.setattr(wormhole_ci.migrate.job, "run_migrate", job)
    monkeypatch.setenv("STAGING_DATABASE_URL", DB_URL)
    argv = [
        *("migrate", "--source", str(example), "--database-url", "env:STAGING_DATABASE_URL"),
        *("--tag", SHA, "--no-backup", "--output", str(tmp_path / "migrate.json")),
    ]
    assert main([*argv, "--environment", "staging"]) == 1
    labels, value = gateway.value("wormhole_ci_last_run_success", "migrate", "staging")
    assert (labels["outcome"], labels["sha"], value) == ("failed", SHA[:7], 0.0)
    assert main([*argv, "--environment", "staging"]) == 0
    assert gateway.value("wormhole_ci_last_run_success", "migrate", "staging")[1] == 1.0
    assert gateway.value("wormhole_ci_failures_total", "migrate", "staging")[1] == 1.0
    # without --environment nothing is pushed (a bare URL names no environment)
    gateway.wipe()
    outcomes = iter(("applied",))
    assert main(argv) == 0
    assert gateway.samples() == []
    captured = capsys.readouterr()
    assert DB_PASSWORD not in captured.out + captured.err + gateway.exposition()
    assert json.loads((tmp_path / "migrate.json").read_text())["outcome"] == "applied"

    # a dry run pushes nothing, even told its environment: nothing ran
    def dry(url: object, options: object, say: object) -> MigrateResult:
        result = MigrateResult(database="127.0.0.1:5432/wormhole", service="api")
        result.outcome = "would-block"
        return result

    monkeypatch.setattr(wormhole_ci.migrate.job, "dry_run_migrate", dry)
    assert main([*argv, "--environment", "staging", "--dry-run"]) == 1
    assert gateway.samples() == []
    assert json.loads((tmp_path / "migrate.json").read_text())["outcome"] == "would-block"
