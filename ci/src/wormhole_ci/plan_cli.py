"""`wormhole-ci plan`: what `check` will run for each service, as a tree or as JSON."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

from wormhole_ci.jsonish import as_dict, as_list

if TYPE_CHECKING:
    from rich.console import Console
    from rich.tree import Tree

# Imports happen in the functions, as in cli.py: every other command's start-up stays fast.


PLAN_HELP = "show what check runs for each service, where each command comes from, and why"
PLAN_DESCRIPTION = (
    "The check plan without running it: per service its kind, toolchain, tasks (command, "
    "working directory, env var names, the convention or override behind each, what its "
    "cache key is made of), skipped conventions with the reason, its image, and the "
    "environments (secrets by variable name only). See docs/plan.md."
)


def plan_arguments(cmd: argparse.ArgumentParser) -> None:
    """The `plan` subcommand's options (`--source` is added by the caller)."""
    cmd.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NAME",
        help="only this service (repeatable); default: all",
    )
    cmd.add_argument("--json", action="store_true", help="print the plan as JSON (docs/plan.md)")


def plan_command(args: argparse.Namespace, err: Console) -> int:
    """Print the plan; an unknown --service is a ManifestError naming the known ones."""
    from wormhole_ci.manifest import load_manifest
    from wormhole_ci.plan_report import plan_document, plan_json
    from wormhole_ci.terminal import console

    manifest = load_manifest(args.source)
    if args.json:
        print(plan_json(manifest, args.service), end="")
        return 0
    document = plan_document(manifest, args.service)
    out = console()
    for part in render(document):
        out.print(part, soft_wrap=False)  # wrap long commands rather than crop them
    return 0


def render(document: dict[str, object]) -> list[object]:
    """The document as rich renderables: a tree per service, then the environments."""
    from rich.text import Text

    out: list[object] = []
    services = _dicts(document.get("services"))
    out.append(Text(f"{document.get('project')}: {len(services)} service(s)", style="bold"))
    out.extend(_service_tree(s) for s in services)
    out.extend(_environment_tree(e) for e in _dicts(document.get("environments")))
    return out


def _environment_tree(env: dict[str, object]) -> Tree:
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(
        f"[bold]environment {escape(str(env.get('name')))}[/]  coolify "
        f"{escape(str(env.get('coolify_url')))}  registry {escape(str(env.get('registry')))}"
    )
    for target in _dicts(env.get("targets")):
        where = target.get("application") or f"tag {target.get('tag')}"
        tree.add(
            escape(
                f"{target.get('service')}: {where}, {target.get('image')}, "
                f"health {target.get('health_url')}"
            )
        )
    hasura = as_dict(env.get("hasura"))
    if hasura is not None:
        tree.add(escape(f"hasura: {hasura.get('url')}"))
    secrets = as_dict(env.get("secrets")) or {}
    names = ", ".join(f"{role} from ${var}" for role, var in secrets.items())
    tree.add(escape(f"secrets (names only): {names or 'none'}"), style="dim")
    return tree


def _service_tree(service: dict[str, object]) -> Tree:
    from rich.markup import escape
    from rich.tree import Tree

    toolchain = as_dict(service.get("toolchain")) or {}
    versions = ", ".join(
        f"{k} {v}" for k, v in toolchain.items() if k not in ("tool", "container") and v
    )
    image = as_dict(service.get("image"))
    head = (
        f"[bold]{escape(str(service.get('name')))}[/]  {service.get('kind')}  "
        f"{escape(str(service.get('directory')))}/  [cyan]{escape(versions)}[/]"
        f"  [dim]container {escape(str(toolchain.get('container')))}"
        f"{'' if image is None else ', image ' + escape(str(image.get('dockerfile')))}[/]"
    )
    tree = Tree(head)
    for task in _dicts(service.get("tasks")):
        command = " ".join(str(a) for a in as_list(task.get("command")) or [])
        node = tree.add(
            f"[green]{escape(str(task.get('name')))}[/]  {escape(command)}"
            f"  [dim]in {escape(str(task.get('workdir')))}[/]"
        )
        node.add(_origin_line(as_dict(task.get("origin")) or {}))
        key = as_dict(task.get("cache_key")) or {}
        env = ", ".join(str(n) for n in as_list(task.get("env")) or []) or "none"
        inputs = ", ".join(str(p) for p in as_list(key.get("inputs")) or [])
        locks = ", ".join(str(p) for p in as_list(key.get("lock_files")) or []) or "none"
        after = ", ".join(str(a) for a in as_list(task.get("after")) or [])
        tools = ", ".join(f"{k} {v}" for k, v in (as_dict(key.get("tools")) or {}).items())
        node.add(
            escape(f"cache key: command, {tools}, env {env}, inputs {inputs} (lock files {locks})"),
            style="dim",
        )
        if after:
            node.add(escape(f"after {after}"), style="dim")
    for skip in _dicts(service.get("skipped")):
        # The reason doubles as check's note ("…, format skipped"): the label says it already.
        reason = re.sub(r", \w+ skipped$", "", str(skip.get("reason")))
        tree.add(f"[yellow]{escape(str(skip.get('task')))} skipped[/]: {escape(reason)}")
    return tree


def _origin_line(origin: dict[str, object]) -> str:
    from rich.markup import escape

    where = " ".join(str(origin[k]) for k in ("file", "field") if origin.get(k))
    text = f"{origin.get('by')}: {where or origin.get('detail')}"
    if origin.get("by") == "convention" and where and origin.get("detail"):
        text += f" ({origin['detail']})"
    replaced = as_list(origin.get("replaced"))
    if replaced:
        text += f", instead of {' '.join(str(a) for a in replaced)}"
    changed = as_list(origin.get("changed"))
    if changed:
        text += f" (sets {', '.join(str(c) for c in changed)})"
    return f"[magenta]{escape(text)}[/]" if origin.get("by") == "override" else escape(text)


def _dicts(value: object) -> list[dict[str, object]]:
    return [d for d in map(as_dict, as_list(value) or []) if d is not None]
