"""`dagger call release` on the stand-in engine, for the parity tests with the native release.

The stand-in engine records the container chains; what the native tests run for real runs
for real here too where it can: the migrate job's container command is our own CLI, so it is
run on the host (against the same PostgreSQL, `/src` → the repository, `/out` → a folder of
the test) and its files are what the module reads back; Coolify, /healthz and the registry
are the same loopback servers. Builds and scanners cannot run without an engine: their
outputs are the stand-in's (fake images, scanner output chosen by the test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagger import dag

from tests.dagger_module.conftest import call
from tests.dagger_module.fake_engine import ExecOutcome, FakeEngine, Step, decode_id
from tests.dagger_module.test_images import pushes_to, write_archive
from tests.dagger_module.test_release import written_files
from tests.images.registry_server import RegistryServer
from wormhole_ci.containers import OUT_PATH, SOURCE_ROOT
from wormhole_ci.main import WormholeCi


@dataclass
class HostMigrate:
    """Runs the migrate container's command (our CLI) on the host, once per job."""

    repo: Path
    out: Path
    env: dict[str, str]
    runs: dict[str, ExecOutcome] = field(default_factory=dict[str, ExecOutcome])

    def matches(self, argv: list[str]) -> bool:
        return argv[0].endswith("/wormhole-ci") and argv[1:2] == ["migrate"]

    def __call__(self, argv: list[str], chain: tuple[Step, ...]) -> ExecOutcome:
        env = {a["name"]: a["value"] for _, n, a in chain if n == "withEnvVariable"}
        job = env["WORMHOLE_CI_JOB"]  # the per-call nonce: one run per job
        if job not in self.runs:
            secrets = {
                a["name"]: _plaintext(a["secret"]) for _, n, a in chain if n == "withSecretVariable"
            }
            args: list[str] = []
            skip = False
            for arg in argv[1:]:
                if skip:  # the container's cache volume: the host's default cache instead
                    skip = False
                    continue
                if arg == "--cache-dir":
                    skip = True
                    continue
                args.append(_host_path(arg, self.repo, self.out))
            done = subprocess.run(
                [sys.executable, "-m", "wormhole_ci", *args],
                env={**os.environ, **self.env, **secrets},
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            self.runs[job] = ExecOutcome(done.returncode, done.stdout, done.stderr)
        return self.runs[job]

    def contents(self, chain: tuple[Step, ...]) -> str:
        """`File.contents` of a file the job wrote under /out (`Directory.file(path)`)."""
        assert any(n == "directory" and a["path"] == OUT_PATH for _, n, a in chain), chain[-3:]
        path = self.out / chain[-1][2]["path"]
        return path.read_text() if path.exists() else ""


def _plaintext(secret_id: str) -> str:
    return next(a["plaintext"] for _, n, a in decode_id(secret_id)[1] if n == "setSecret")


def _host_path(arg: str, repo: Path, out: Path) -> str:
    for inside, outside in ((SOURCE_ROOT, repo), (OUT_PATH, out)):
        if arg == inside or arg.startswith(inside + "/"):
            return str(outside) + arg[len(inside) :]
    return arg


@dataclass
class DaggerRelease:
    files: dict[str, str]
    record: dict[str, Any]
    migrate_out: Path


def dagger_release(
    repo: Path,
    *,
    sha: str,
    registry: RegistryServer,
    secrets: dict[str, str],
    out: Path,
    env: dict[str, str],
    engine: FakeEngine,
    configure: Callable[[FakeEngine], None] | None = None,
) -> DaggerRelease:
    """`dagger call release --environment=staging` of `repo` at `sha` on the stand-in
    `engine`; `registry` must be the one the repo's manifest names for this run."""
    out.mkdir(parents=True, exist_ok=True)
    engine.reset()
    try:
        engine.file_writer = write_archive
        engine.publisher = pushes_to(registry)
        migrate = HostMigrate(repo, out, env)
        engine.on_exec_run(migrate.matches, migrate)
        engine.file_contents = migrate.contents
        if configure is not None:
            configure(engine)

        async def run() -> str:
            module = WormholeCi(source=dag.host().directory(str(repo)))
            result = await module.release(
                environment="staging",
                tag=sha,
                coolify_token=dag.set_secret("coolify-token", secrets["coolify_token"]),
                database_url=dag.set_secret("database-url", secrets["database_url"]),
                registry_password=dag.set_secret("registry-password", secrets["registry_password"]),
                hasura_admin_secret=dag.set_secret("hasura-admin", secrets["hasura_admin_secret"])
                if "hasura_admin_secret" in secrets
                else None,
                allow_unavailable_scanners=True,
            )
            return await result.id()

        files = written_files(call(run))
    finally:
        engine.reset()
    return DaggerRelease(files, json.loads(files["release.json"]), out)


def comparable(record: dict[str, Any], registry: str) -> dict[str, Any]:
    """A release record without what differs between two runs of the same scenario: times,
    ids (digests, deployment uuids, backup time stamps, the registry's address) and what
    the scanners and builds printed (they cannot run on the stand-in engine)."""
    out = json.loads(json.dumps(record))
    out.pop("started")
    for step in out["steps"]:
        step.pop("seconds")
        if step["name"] in ("build", "scan", "publish", "migrate", "deploy"):
            step.pop("detail")  # image names with digests, tool output
        elif step["status"] == "failed":
            step["detail"] = step["detail"].splitlines()[0]
    for image in out["images"]:
        image["config_digest"] = bool(image["config_digest"])
        image["digest"] = bool(image["digest"])
        image["reference"] = image["reference"].replace(registry, "<registry>").split("@")[0]
    if out["scan"] is not None:
        # which scans ran and whether the policy passed; not what the scanners said
        out["scan"]["outcomes"] = sorted(out["scan"]["outcomes"])
        out["scan"]["blocking"] = out["scan"]["blocking"] > 0
        out["scan"].pop("versions")
    migrations = out["migrations"]
    if migrations:
        migrations["lock_waited"] = 0
        migrations["squawk"] = bool(migrations.get("squawk"))
        migrations["warnings"] = len(migrations.get("warnings") or [])
        if migrations.get("backup"):
            migrations["backup"] = Path(migrations["backup"]).name.rsplit("-", 1)[-1]
        migrations["steps"] = [(s["name"], s["status"]) for s in migrations["steps"]]
    for deployment in out["deployments"]:
        deployment["deployment"] = bool(deployment["deployment"])
        deployment["detail"] = deployment["detail"].split(" (")[0]
    if out["refused"]:
        out["refused"] = out["refused"].split(";")[0]
    return out
