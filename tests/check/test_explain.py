"""`check --explain`: real runs on the uv-service fixture name why each task ran or say reused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from tests.conftest import copy_tree
from wormhole_ci.check.explain import KeyInputs, explain_lines, first_difference, key_inputs
from wormhole_ci.check.native import NativeExecutor, NativeOptions
from wormhole_ci.check.report import report_json
from wormhole_ci.check.scheduler import Silent
from wormhole_ci.manifest import ServiceKind
from wormhole_ci.plan import Plan, ServicePlan, Task, Tool
from wormhole_ci.results import Explanation, RunReport, Status, TaskResult
from wormhole_ci.toolchains import HostTools, default_cache_dir

FIXTURE = Path(__file__).parents[1] / "fixtures" / "monorepos" / "uv-service"
TASKS = ("install", "lint", "format", "typecheck", "test")
SECRET_A = "value-A-9f3c1e77"
SECRET_B = "value-B-2d8a4b55"


@dataclass
class Warm:
    """A copy of the fixture whose every task passed once with this cache."""

    root: Path
    cache: Path
    work: Path

    def check(self, env: dict[str, str] | None = None) -> tuple[dict[str, object], str]:
        """`wormhole-ci check --explain --json`: (task → its JSON `explain`, all output)."""
        report = self.work / "check.json"
        done = subprocess.run(
            [
                *(sys.executable, "-m", "wormhole_ci", "check", "--source", str(self.root)),
                *("--cache-dir", str(self.cache), "--progress", "plain"),
                *("--explain", "--json", str(report)),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env=env,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        text = report.read_text(encoding="utf-8")
        tasks = json.loads(text)["tasks"]
        explained = {t["task"]: t["explain"] for t in tasks}
        return explained, output + text

    def manifest(self, text: str) -> None:
        (self.root / "wormhole-ci.toml").write_text(
            '[project]\nname = "uv-service"\n\n[services.greeter]\n' + text, encoding="utf-8"
        )


REUSED = {"reused": True}


def cause(kind: str, subject: str, detail: str = "changed", more: int = 0) -> dict[str, object]:
    return {"reused": False, "cause": kind, "subject": subject, "detail": detail, "more": more}


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Warm:
    work = tmp_path_factory.mktemp("explain")
    state = Warm(copy_tree(FIXTURE, work / "uv-service"), work / "cache", work)
    # Results and records of our own, but the usual uv cache and provisioned tools: the
    # fixture's packages are installed from there rather than downloaded again.
    state.cache.mkdir()
    for shared in ("uv", "tools"):
        (default_cache_dir() / shared).mkdir(parents=True, exist_ok=True)
        (state.cache / shared).symlink_to(default_cache_dir() / shared)
    explained, output = state.check()
    assert explained == {t: cause("no earlier run", "", "") for t in TASKS}, output
    return state


def restored(warm: Warm, path: Path, original: str) -> None:
    """Put `path` back: the earlier passes are reused again, nothing runs."""
    path.write_text(original, encoding="utf-8")
    explained, output = warm.check()
    assert explained == dict.fromkeys(TASKS, REUSED), output


@pytest.mark.slow
def test_nothing_changed_reuses_every_task(warm: Warm) -> None:
    explained, output = warm.check()
    assert explained == dict.fromkeys(TASKS, REUSED)
    assert "greeter/typecheck  reused" in output
    assert "started" not in output  # nothing ran


@pytest.mark.slow
def test_an_edited_source_file_is_named(warm: Warm) -> None:
    module = warm.root / "greeter" / "src" / "greeter" / "__init__.py"
    original = module.read_text(encoding="utf-8")
    module.write_text(original.replace("an empty name", "a blank name"), encoding="utf-8")
    explained, output = warm.check()
    assert explained == dict.fromkeys(TASKS, cause("file", "greeter/src/greeter/__init__.py"))
    assert "greeter/lint       ran: file greeter/src/greeter/__init__.py changed" in output
    restored(warm, module, original)


@pytest.mark.slow
def test_a_changed_lock_file_is_named_before_other_files(warm: Warm) -> None:
    lock = warm.root / "greeter" / "uv.lock"
    test_file = warm.root / "greeter" / "tests" / "test_greet.py"
    original, original_test = lock.read_text(encoding="utf-8"), test_file.read_text()
    # a comment keeps the lock valid for `uv sync --frozen`; the test file sorts first by
    # path, yet the lock file is the more telling cause
    lock.write_text("# regenerated\n" + original, encoding="utf-8")
    test_file.write_text(original_test.replace("text.", "text, exactly."), encoding="utf-8")
    explained, output = warm.check()
    assert explained == dict.fromkeys(TASKS, cause("lock file", "greeter/uv.lock", more=1)), output
    test_file.write_text(original_test, encoding="utf-8")
    restored(warm, lock, original)


@pytest.mark.slow
def test_a_changed_tool_version_is_named(warm: Warm, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None
    real = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # A host whose node reports another version (an upgrade): everything else goes to node.
    shim = tmp_path / "bin" / "node"
    shim.parent.mkdir()
    shim.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && {{ echo v20.99.0; exit 0; }}\nexec {node} "$@"\n'
    )
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    explained, output = warm.check(env)
    assert explained == dict.fromkeys(TASKS, cause("tool version", "node", f"{real} → v20.99.0"))
    assert f"ran: tool version node {real} → v20.99.0" in output
    explained, output = warm.check()  # the real node again: its passes are still kept
    assert explained == dict.fromkeys(TASKS, REUSED), output


@pytest.mark.slow
def test_a_changed_env_var_is_named_and_its_value_never_shown_nor_stored(warm: Warm) -> None:
    manifest = warm.root / "wormhole-ci.toml"
    original = manifest.read_text(encoding="utf-8")
    warm.manifest(f'[services.greeter.tasks.test]\nenv = {{ GREETER_TOKEN = "{SECRET_A}" }}\n')
    explained, first = warm.check()
    assert explained["test"] == cause("env var", "GREETER_TOKEN", "added")
    warm.manifest(f'[services.greeter.tasks.test]\nenv = {{ GREETER_TOKEN = "{SECRET_B}" }}\n')
    explained, second = warm.check()
    assert explained == {
        **dict.fromkeys(TASKS[:-1], REUSED),
        "test": cause("env var", "GREETER_TOKEN"),
    }
    assert "ran: env var GREETER_TOKEN changed" in second
    stored = "".join(p.read_text() for p in (warm.cache / "explain").iterdir())
    for secret in (SECRET_A, SECRET_B):
        assert secret not in first + second
        assert secret not in stored
    restored(warm, manifest, original)


@pytest.mark.slow
def test_a_changed_command_is_named_and_only_its_task_runs(warm: Warm) -> None:
    manifest = warm.root / "wormhole-ci.toml"
    original = manifest.read_text(encoding="utf-8")
    warm.manifest('[services.greeter.tasks]\ntest = "uv run --frozen pytest -q"\n')
    explained, output = warm.check()
    assert explained == {
        **dict.fromkeys(TASKS[:-1], REUSED),
        "test": cause("command", "`uv run --frozen pytest -q` in greeter"),
    }
    assert "[greeter] test started: uv run --frozen pytest -q" in output
    restored(warm, manifest, original)


def _task(**changes: object) -> Task:
    fields: dict[str, object] = {
        "service": "svc",
        "name": "test",
        "tool": Tool.UV,
        "tool_version": "0.13.8",
        "workdir": "svc",
        "argv": ("uv", "run", "pytest"),
        "env": (("TOKEN", "one"),),
    }
    fields.update(changes)
    return Task(**fields)  # pyright: ignore[reportArgumentType]


def _inputs(task: Task, files: dict[str, str] | None = None) -> KeyInputs:
    return key_inputs(
        task, files or {"svc/a.py": "1", "svc/uv.lock": "1"}, "linux-x86_64 node v20 python 3.11.7"
    )


def test_the_command_is_named_before_tools_env_and_files() -> None:
    old = _inputs(_task())
    new_task = _task(argv=("pytest",), tool_version="0.14.0", env=(("TOKEN", "two"),))
    new = _inputs(new_task, {"svc/a.py": "2", "svc/uv.lock": "2"})
    assert first_difference(old, new, new_task) == Explanation(
        False, "command", "`pytest` in svc", "changed", more=4
    )


def test_added_and_removed_files_are_named_and_identical_inputs_have_no_difference() -> None:
    task = _task()
    old = _inputs(task)
    assert first_difference(old, _inputs(task), task) is None
    added = _inputs(task, {"svc/a.py": "1", "svc/uv.lock": "1", "svc/b.py": "1"})
    assert first_difference(old, added, task) == Explanation(False, "file", "svc/b.py", "added")
    removed = _inputs(task, {"svc/uv.lock": "1"})
    assert first_difference(old, removed, task) == Explanation(False, "file", "svc/a.py", "removed")


def test_env_values_are_kept_only_as_digests() -> None:
    stored = json.dumps(_inputs(_task(env=(("TOKEN", "hunter2-secret"),))).to_json())
    assert "TOKEN" in stored
    assert "hunter2-secret" not in stored


def _run_native(plan: Plan, source: Path, tmp_path: Path, *, reuse: bool = True) -> RunReport:
    options = NativeOptions(
        source=source,
        log_dir=tmp_path / "logs",
        cache_dir=tmp_path / "cache",
        jobs=1,
        reuse=reuse,
    )
    return anyio.run(
        NativeExecutor(options, HostTools({"python": (sys.executable,)})).execute, plan, Silent()
    )


def test_causes_beyond_the_inputs_last_failure_missing_outputs_earlier_task_no_cache(
    tmp_path: Path,
) -> None:
    source = tmp_path / "src"
    (source / "svc").mkdir(parents=True)
    flag = tmp_path / "tests-pass"  # outside the inputs: the test fails, then passes, unchanged
    install = _task(
        name="install",
        env=(),
        argv=("python", "-c", "import os; os.makedirs('.venv', exist_ok=True)"),
        outputs=(".venv",),
    )
    test = _task(env=(), argv=("python", "-c", f"import os; assert os.path.exists({str(flag)!r})"))
    plan = Plan("p", (ServicePlan("svc", ServiceKind.PYTHON, "svc", (install, test)),))

    def why() -> list[Explanation | None]:
        return [r.explanation for r in _run_native(plan, source, tmp_path).results]

    assert why() == [Explanation(False, "no earlier run")] * 2
    assert why() == [Explanation(True), Explanation(False, "last run failed")]
    flag.touch()
    (source / "svc" / ".venv").rmdir()
    assert why() == [
        Explanation(False, "outputs missing", ".venv"),
        Explanation(False, "earlier task ran", "svc:install"),
    ]
    assert why() == [Explanation(True)] * 2
    report = _run_native(plan, source, tmp_path, reuse=False)
    assert [r.explanation for r in report.results] == [
        Explanation(False, "cache disabled", "--no-cache")
    ] * 2
    tasks = json.loads(report_json(report))["tasks"]
    assert [t["explain"] for t in tasks] == [
        {
            "reused": False,
            "cause": "cache disabled",
            "subject": "--no-cache",
            "detail": "",
            "more": 0,
        }
    ] * 2


def test_explain_lines_say_a_blocked_task_did_not_run() -> None:
    report = RunReport(
        (
            TaskResult(
                "svc", "install", Status.FAILED, explanation=Explanation(False, "no earlier run")
            ),
            TaskResult("svc", "test", Status.BLOCKED, tail="not run: svc:install did not pass"),
        )
    )
    assert explain_lines(report) == [
        "explain:",
        "  svc/install  ran: no earlier run",
        "  svc/test     not run (blocked)",
    ]
    tasks = json.loads(report_json(report))["tasks"]
    assert "explain" not in tasks[1]


def test_a_new_wormhole_ci_version_is_named_for_a_task_whose_tool_is_wormhole_ci() -> None:
    task = _task(tool=Tool.WORMHOLE, tool_version="")
    old = _inputs(task)
    new = KeyInputs(old.command, {**old.tools, "wormhole-ci": "99.0.0"}, old.env, old.files)
    assert old.tools["wormhole-ci"] != "any"
    assert first_difference(old, new, task) == Explanation(
        False, "tool version", "wormhole-ci", f"{old.tools['wormhole-ci']} → 99.0.0"
    )
