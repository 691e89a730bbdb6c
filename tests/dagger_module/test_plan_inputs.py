"""The Dagger runtime plans from the PLAN_INPUTS export alone: it must plan what native plans."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, ROOT, copy_example
from tests.dagger_module.fake_engine import matches
from wormhole_ci.dagger_runtime.source import PLAN_INPUTS
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.manifest import load_manifest
from wormhole_ci.paths import GENERATED_DIRS
from wormhole_ci.plan import build_plan
from wormhole_ci.security.tasks import scan_plan

MONOREPOS = {
    "example": EXAMPLE,
    **{p.name: p for p in sorted((ROOT / "tests" / "fixtures" / "monorepos").iterdir())},
}


def exported(source: Path, target: Path) -> Path:
    """What `Directory.filter(include=PLAN_INPUTS).export()` writes (the fake engine's matcher)."""
    for file in source.rglob("*"):
        rel = file.relative_to(source).as_posix()
        if GENERATED_DIRS.intersection(file.relative_to(source).parts):
            continue  # the module's source directory excludes them (SOURCE_IGNORE)
        if file.is_file() and any(matches(rel, pattern) for pattern in PLAN_INPUTS):
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target / rel)
    return target


@pytest.mark.parametrize("name", sorted(MONOREPOS))
def test_the_plan_inputs_alone_give_the_native_plans(name: str, tmp_path: Path) -> None:
    full = MONOREPOS[name]
    part = exported(full, tmp_path / name)
    assert len(list(part.rglob("*"))) < len(list(full.rglob("*")))  # a real subset
    native, dagger = load_manifest(full), load_manifest(part)
    assert build_plan(dagger).tasks == build_plan(native).tasks
    assert build_plan(dagger).notes == build_plan(native).notes
    assert scan_plan(dagger) == scan_plan(native)


def _relocated_schema(root: Path) -> None:
    """prisma.config.ts points at a multi-file schema folder (Prisma's `prismaSchemaFolder`)."""
    api = root / "api"
    (api / "db").mkdir()
    (api / "prisma" / "schema.prisma").rename(api / "db" / "main.prisma")
    config = api / "prisma.config.ts"
    config.write_text(config.read_text().replace('"prisma/schema.prisma"', '"db"'))


def _swap(service: str, lock: str, other: str, text: str) -> Callable[[Path], None]:
    def swap(root: Path) -> None:
        (root / service / lock).unlink()
        (root / service / other).write_text(text)

    return swap


# Conventions that read files beyond the example's (issue 16): each must reach the plan.
VARIANTS: dict[str, Callable[[Path], None]] = {
    "prisma.config.ts schema folder": _relocated_schema,
    "poetry.lock": _swap(
        "runner", "uv.lock", "poetry.lock", '[[package]]\nname = "x"\nversion = "1"\n'
    ),
    "requirements.txt": _swap("runner", "uv.lock", "requirements.txt", "x==1\n"),
    "yarn.lock": _swap("web", "pnpm-lock.yaml", "yarn.lock", ""),
    "bun.lock": _swap("web", "pnpm-lock.yaml", "bun.lock", ""),
}


def _planned(root: Path) -> object:
    """The check plan and scan plan, or the error that stops planning (both must agree)."""
    manifest = load_manifest(root)
    try:
        tasks: object = build_plan(manifest).tasks
    except WormholeCiError as exc:
        tasks = str(exc).replace(str(root), "<root>")
    return tasks, scan_plan(manifest)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_convention_reading_another_file_plans_the_same_through_dagger(
    variant: str, tmp_path: Path
) -> None:
    full = copy_example(tmp_path / "full")
    VARIANTS[variant](full)
    part = exported(full, tmp_path / "part")
    assert _planned(part) == _planned(full)
