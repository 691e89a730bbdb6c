"""Imports flow one way: the model imports no capability, only main.py and the Dagger
runtime (dagger_runtime/) import dagger, and only main.py imports that runtime.

Read from the source with `ast`, so an import inside a function, a TYPE_CHECKING block
or an `importlib.import_module("...")` call counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import wormhole_ci

SRC = Path(wormhole_ci.__file__).parent
MODEL = ("manifest", "plan", "results", "errors", "secretref", "jsonish", "paths", "waivers")
"""The top-level model modules (DESIGN.md §2): plain data and its parsing."""
CAPABILITIES = frozenset(
    {
        "check",
        "security",
        "images",
        "migrate",
        "deploy",
        "hasura",
        "release",
        "drift",
        "observability",
        "delivery",
        "preview",
    }
)
RUNTIME = "wormhole_ci.dagger_runtime"
"""The Dagger executors (DESIGN.md §2): with main.py, the only importers of dagger."""


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imports(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module `source` (the text of `module`) imports, as absolute dotted names."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            # `from wormhole_ci import security` imports the subpackage
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def capabilities_in(names: set[str]) -> set[str]:
    """The capability packages among imported module names."""
    out: set[str] = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "wormhole_ci" and len(parts) > 1 and parts[1] in CAPABILITIES:
            out.add(f"wormhole_ci.{parts[1]}")
    return out


def imports_dagger(names: set[str]) -> bool:
    return any(n == "dagger" or n.startswith("dagger.") for n in names)


def in_runtime(name: str) -> bool:
    return name == RUNTIME or name.startswith(f"{RUNTIME}.")


def imports_of(name: str, path: Path) -> set[str]:
    return imports(path.read_text(encoding="utf-8"), name, is_package=path.name == "__init__.py")


def test_the_package_and_every_model_module_are_found() -> None:
    found = modules()
    assert len(found) > 20
    for model in MODEL:
        assert f"wormhole_ci.{model}" in found, f"{model}: renamed? update MODEL"
    assert "wormhole_ci.main" in found
    assert {f"wormhole_ci.{c}" for c in CAPABILITIES} & set(found)


def test_the_model_imports_no_capability() -> None:
    found = modules()
    offenders = {
        model: sorted(capabilities_in(imports_of(model, found[model])))
        for model in (f"wormhole_ci.{m}" for m in MODEL)
    }
    assert {m: c for m, c in offenders.items() if c} == {}


def test_only_main_and_the_dagger_runtime_import_dagger() -> None:
    importers = {n for n, p in modules().items() if imports_dagger(imports_of(n, p))}
    # both are seen, so the check below looks at real importers
    assert "wormhole_ci.main" in importers
    assert any(in_runtime(n) for n in importers)
    others = sorted(n for n in importers if n != "wormhole_ci.main" and not in_runtime(n))
    assert others == []


def test_only_main_imports_the_dagger_runtime() -> None:
    """The core (capabilities, model, cli) never reaches into the Dagger executors."""
    importers = sorted(
        n
        for n, p in modules().items()
        if not in_runtime(n) and any(in_runtime(i) for i in imports_of(n, p))
    )
    assert importers == ["wormhole_ci.main"]


def test_the_checks_see_imports_anywhere() -> None:
    source = """
from __future__ import annotations
from typing import TYPE_CHECKING
from wormhole_ci.errors import ManifestError
if TYPE_CHECKING:
    from dagger import Container
def parse() -> None:
    from wormhole_ci.security.model import Finding
class Loader:
    def load(self) -> None:
        import wormhole_ci.images.spec
        from wormhole_ci import release
        from . import deploy
        from .hasura import check
        importlib.import_module("wormhole_ci.migrate.job")
"""
    found = imports(source, "wormhole_ci.manifest")
    assert capabilities_in(found) == {
        "wormhole_ci.security",
        "wormhole_ci.images",
        "wormhole_ci.release",
        "wormhole_ci.deploy",
        "wormhole_ci.hasura",
        "wormhole_ci.migrate",
    }
    assert imports_dagger(found)
    clean = imports("from wormhole_ci.errors import ManifestError\nimport json\n", "wormhole_ci.x")
    assert capabilities_in(clean) == set()
    assert not imports_dagger(clean)
    # relative imports resolve from the module's own package (or the package itself for __init__)
    assert "wormhole_ci.security.model" in imports(
        "from .model import Finding\n", "wormhole_ci.security.policy"
    )
    assert "wormhole_ci.security.model" in imports(
        "from .model import Finding\n", "wormhole_ci.security", is_package=True
    )
    assert "wormhole_ci.security" in imports("from .. import security\n", "wormhole_ci.images.spec")
    assert in_runtime("wormhole_ci.dagger_runtime.scan")
    assert not in_runtime("wormhole_ci.dagger_runtimes")
    assert any(
        in_runtime(n)
        for n in imports("from wormhole_ci import dagger_runtime\n", "wormhole_ci.cli")
    )
    assert any(
        in_runtime(n)
        for n in imports("from .dagger_runtime.scan import scan_source\n", "wormhole_ci.main")
    )
