"""Real scanner runs on copies of the example: Semgrep rules, Trivy secrets/misconfig, the audits
(unavailable here), the CLI's exit codes, and no secret value in any report or log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_example
from tests.security.semgrep_injections import INJECTIONS
from tests.security.test_semgrep_rules import CATEGORIES
from wormhole_ci.security.scan import provision_scanners
from wormhole_ci.security.tasks import OFFLINE_ENV, rules_dir
from wormhole_ci.toolchains import HostTools, default_cache_dir

pytestmark = pytest.mark.slow
SEMGREP_TESTS = Path(__file__).parent / "semgrep"


@pytest.fixture(scope="session")
def scanners() -> HostTools:
    """semgrep, trivy, pip-audit (hash-locked, provisioned into the cache), pnpm, uv."""
    host, _, _ = provision_scanners(
        {"semgrep", "trivy", "pip-audit", "pnpm-audit"}, default_cache_dir()
    )
    return host


def scan_cli(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "wormhole_ci",
            "scan",
            "--source",
            str(root),
            "--output-dir",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def test_semgrep_rules_pass_their_own_test_files(scanners: HostTools) -> None:
    done = subprocess.run(
        scanners.resolve(("semgrep", "--test", "--config", str(rules_dir()), str(SEMGREP_TESTS))),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **dict(OFFLINE_ENV)},
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_semgrep_clean_on_the_example_and_catches_each_injection(
    tmp_path: Path, scanners: HostTools
) -> None:
    del scanners
    clean = copy_example(tmp_path / "clean")
    done = scan_cli(clean, tmp_path / "out-clean", "--only", "sast")
    report = json.loads((tmp_path / "out-clean" / "scan.json").read_text())
    outcomes = {(o["tool"], o["target"]): o for o in report["outcomes"]}
    assert outcomes[("semgrep", "monorepo")]["status"] == "clean", done.stdout + done.stderr
    assert outcomes[("trivy", "monorepo")]["status"] == "clean"
    assert done.returncode == 0
    dirty = copy_example(tmp_path / "dirty")
    for injection in INJECTIONS:
        target = dirty / injection.relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(injection.content)
    done = scan_cli(dirty, tmp_path / "out-dirty", "--only", "sast")
    assert done.returncode == 1
    report = json.loads((tmp_path / "out-dirty" / "scan.json").read_text())
    semgrep = next(o for o in report["outcomes"] if o["tool"] == "semgrep")
    found = {(f["id"], f["location"]["path"], f["location"]["line"]) for f in semgrep["findings"]}
    expected = {(i.rule_id, i.relative_path, i.line) for i in INJECTIONS}
    assert expected <= found, sorted(expected - found)
    assert {i.category for i in INJECTIONS} >= CATEGORIES


def test_trivy_finds_an_injected_key_and_dockerfile_misconfig_and_never_echoes_the_key(
    tmp_path: Path,
) -> None:
    root = copy_example(tmp_path)
    key = root / "runner" / "deploy_key.pem"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            str(key),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (root / "api" / "Dockerfile").write_text(
        'FROM node:latest\nCOPY . /app\nRUN npm install\nCMD ["node", "/app/index.js"]\n'
    )
    out = tmp_path / "out"
    done = scan_cli(root, out, "--only", "sast")
    assert done.returncode == 1
    report = json.loads((out / "scan.json").read_text())
    trivy = next(o for o in report["outcomes"] if o["tool"] == "trivy")
    findings = {(f["id"], f["location"]["path"]) for f in trivy["findings"]}
    assert ("private-key", "runner/deploy_key.pem") in findings
    docker = {f["id"] for f in trivy["findings"] if f["location"]["path"] == "api/Dockerfile"}
    assert docker & {"AVD-DS-0001", "DS-0001", "AVD-DS-0002", "DS-0002"}, trivy["findings"]
    # no line of the key body appears in any report, log line or SBOM
    body = [line for line in key.read_text().splitlines() if line and "-----" not in line]
    assert body, "the key has no body lines to look for"
    texts = [done.stdout, done.stderr, *(p.read_text() for p in out.iterdir() if p.is_file())]
    for text in texts:
        assert not any(line in text for line in body)


def test_audits_are_unavailable_here_and_fail_the_scan_unless_allowed(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    strict = scan_cli(root, tmp_path / "strict", "--only", "audit")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    report = json.loads((tmp_path / "strict" / "scan.json").read_text())
    statuses = {(o["tool"], o["target"]): o["status"] for o in report["outcomes"]}
    assert statuses == {
        ("pnpm-audit", "api"): "unavailable",
        ("pnpm-audit", "web"): "unavailable",
        ("pip-audit", "runner"): "unavailable",
    }
    reasons = {o["target"]: o["reason"] for o in report["outcomes"]}
    assert "405" in reasons["api"]
    assert "could not be audited" in reasons["runner"]
    assert "not a clean result" in strict.stderr
    markdown = (tmp_path / "strict" / "scan.md").read_text()
    assert "No known vulnerabilities" not in markdown + strict.stdout + strict.stderr
    allowed = scan_cli(root, tmp_path / "allowed", "--only", "audit", "--allow-unavailable")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "unavailable" in allowed.stdout
    assert json.loads((tmp_path / "allowed" / "scan.json").read_text())["passed"] is True


def test_full_scan_writes_sarif_markdown_json_and_sboms(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    out = tmp_path / "out"
    done = scan_cli(root, out, "--allow-unavailable")
    assert done.returncode == 0, done.stdout + done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "sbom-api.cdx.json",
        "sbom-runner.cdx.json",
        "sbom-web.cdx.json",
        "scan.json",
        "scan.md",
        "scan.sarif",
    ]
    sbom = json.loads((out / "sbom-api.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert any(
        (c.get("group"), c["name"]) == ("@prisma", "client") for c in sbom.get("components", [])
    )
    sarif = json.loads((out / "scan.sarif").read_text())
    assert {r["tool"]["driver"]["name"] for r in sarif["runs"]} == {
        "semgrep",
        "trivy",
        "pnpm-audit",
        "pip-audit",
    }
    assert all(
        r["tool"]["driver"].get("version") for r in sarif["runs"]
    )  # every report names the tool version


def docker_archive(path: Path) -> Path:
    """A minimal `docker save` archive: one layer with a Debian os-release."""
    import hashlib
    import io
    import tarfile

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        data = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
        info = tarfile.TarInfo("etc/os-release")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "config": {},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": ["wormhole-api:test"], "Layers": ["layer.tar"]}]
    ).encode()
    with tarfile.open(path, mode="w") as tar:
        for name, blob in (
            ("layer.tar", layer_bytes),
            (config_name, config),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def test_image_tarball_cve_scan_is_unavailable_without_vulnerability_data(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    tarball = docker_archive(tmp_path / "api.tar")
    done = scan_cli(root, tmp_path / "out", "--only", "sast", "--image", f"api:test={tarball}")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads((tmp_path / "out" / "scan.json").read_text())
    image = next(o for o in report["outcomes"] if o["target"] == "api:test")
    assert image["status"] == "unavailable"
    assert image["reason"].startswith("no vulnerability data: ")
    assert "failed to download vulnerability DB" in image["reason"]
