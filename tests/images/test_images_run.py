"""Real builds of the example's images: non-root, healthy, reporting their SHA; cheap rebuilds.

Each image runs as non-root, turns healthy and reports its SHA; a one-file source change
reuses the dependency layers.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.images.engine import CACHE, Engine
from tests.images.service_images import (
    SERVICES,
    build_image,
    copy_service,
    image_config,
    image_size,
    present_paths,
    running,
)

pytestmark = pytest.mark.slow
SIZES_REPORT = CACHE / "reports" / "image-sizes.json"


def fake_sha(seed: str) -> str:
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


def record(service: str, **values: object) -> None:
    """Keep the latest sizes and timings per service in SIZES_REPORT (and print them for -s)."""
    SIZES_REPORT.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(SIZES_REPORT.read_text()) if SIZES_REPORT.exists() else {}
    report[service] = {**report.get(service, {}), **values}
    SIZES_REPORT.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"{service}: {values}")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_runs_as_non_root_turns_healthy_and_reports_its_sha(
    name: str, engine: Engine, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    service = SERVICES[name]
    sha = fake_sha(f"wormhole-{name}")
    tag = f"wormhole-ci-test/wormhole-{name}:{sha[:12]}"
    build = build_image(engine, service, copy_service(name, tmp_path), tag, sha)

    config = image_config(engine, tag)
    user = config["User"]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0, user
    assert config["Healthcheck"]["Test"][0] == "CMD", config["Healthcheck"]
    assert f"BUILD_SHA={sha}" in config["Env"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.revision"] == sha
    assert labels["org.opencontainers.image.title"] == f"wormhole-{name}"
    assert labels["org.opencontainers.image.version"] == f"0.0.0-{sha[:7]}"
    assert present_paths(engine, tag, service.absent) == []

    with running(engine, tag, service.port) as container:
        container.wait_healthy()
        uid = engine.docker("exec", container.id, "id", "-u").stdout.strip()
        assert uid == user.split(":")[0]
        assert container.get_json("/healthz") == {"status": "ok", "version": sha}
        started = time.monotonic()
        engine.docker("stop", "--time", "20", container.id)
        stop_seconds = time.monotonic() - started
        assert container.state()["ExitCode"] == 0, container.logs()
        # PID 1 handles SIGTERM itself instead of waiting for the SIGKILL
        assert stop_seconds < 10, stop_seconds

    size = image_size(engine, tag)
    base = image_size(engine, service.base_image)
    record_property(f"{name}_image_bytes", size)
    record(
        name,
        image_bytes=size,
        base_image_bytes=base,
        added_bytes=size - base,
        build_seconds=round(build.seconds, 1),
        cached_steps=f"{sum(cached for _, cached in build.steps())}/{len(build.steps())}",
    )


def _is_install(instruction: str) -> bool:
    return any(
        marker in instruction
        for marker in ("pnpm fetch", "pnpm install", "corepack prepare", "pip install", "prisma generate")
    ) or ("uv sync" in instruction and "--no-install-project" in instruction)  # fmt: skip


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_one_file_source_change_reuses_the_dependency_layers(
    name: str, engine: Engine, tmp_path: Path
) -> None:
    service = SERVICES[name]
    context = copy_service(name, tmp_path)
    sha = fake_sha(f"wormhole-{name}")
    tag = f"wormhole-ci-test/wormhole-{name}:rebuild"
    build_image(engine, service, context, tag, sha)
    source = context / service.source_file
    comment = "#" if source.suffix == ".py" else "//"
    # unique per run, so that this build is never served from an earlier run's cache
    source.write_text(source.read_text() + f"\n{comment} rebuild {time.time_ns()}\n")
    try:
        rebuild = build_image(engine, service, context, tag, fake_sha(f"{name}-{time.time_ns()}"))
        steps = rebuild.steps()
        installs = [(step, cached) for step, cached in steps if _is_install(step)]
        assert installs and all(cached for _, cached in installs), installs
        copies = [
            cached
            for step, cached in steps
            if step.startswith(("COPY src ", "COPY src/", "COPY . "))
        ]
        assert copies and not any(copies), f"the source change rebuilt nothing: {steps}"
        record(
            name,
            warm_rebuild_seconds=round(rebuild.seconds, 1),
            warm_rebuild_cached_steps=f"{sum(c for _, c in steps)}/{len(steps)}",
        )
    finally:
        engine.docker("image", "rm", tag, check=False)
