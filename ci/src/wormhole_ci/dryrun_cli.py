"""`deploy --dry-run` and `release --dry-run --probe`: the read-only probe (deploy/probe.py).

cli.py imports this module only when one of them runs, so it imports what it needs up front.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from wormhole_ci import terminal
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.deploy.probe import REFUSED, probe_environment
from wormhole_ci.deploy.published import check_published
from wormhole_ci.images.gitinfo import revision
from wormhole_ci.images.spec import Revision, image_specs
from wormhole_ci.manifest import Environment, load_manifest
from wormhole_ci.secretref import Secret, redact, resolve_secret

if TYPE_CHECKING:
    from rich.console import Console

EXIT_REFUSED = 1


def deploy_dry_run(args: argparse.Namespace, err: Console) -> int:
    """What `deploy` would find and change, with GET requests only (registry, Coolify,
    health URLs); exit 1 when a real deploy would be refused or could not verify."""
    manifest = load_manifest(args.source)
    env = manifest.environment(args.environment)
    token = _coolify_token(env)
    rev = revision(manifest.root, args.tag)
    specs = image_specs(manifest)
    password_var = env.secrets.get("registry_password")
    password = os.environ.get(password_var) if password_var else None

    def published() -> None:  # the registry check a deploy makes first (read-only)
        check_published(env, specs, rev, username=env.registry_username, password=password)

    return _probe(env, token, rev, err, published=published, output=args.output)


def release_probe(env: Environment, rev: Revision, err: Console) -> int:
    """`release --dry-run --probe`: the deploy step's read-only checks (the images are not
    published yet, so the registry is not asked)."""
    note = "not checked (the release builds and publishes the images first)"
    return _probe(env, _coolify_token(env), rev, err, registry_note=note)


def _coolify_token(env: Environment) -> Secret:
    var = env.secrets["coolify_token"]
    return resolve_secret(f"env:{var}", f"environments.{env.name}.secrets.coolify_token")


def _probe(
    env: Environment,
    token: Secret,
    rev: Revision,
    err: Console,
    *,
    published: Callable[[], None] | None = None,
    registry_note: str = "not checked",
    output: Path | None = None,
) -> int:
    with Coolify(env.coolify_url, token.reveal()) as coolify:
        result = probe_environment(
            env,
            coolify,
            sha=rev.sha,
            image_tag=rev.short,
            published=published,
            registry_note=registry_note,
        )
    for line in result.lines():
        print(redact(line, token))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(redact(result.to_json(), token) + "\n", encoding="utf-8")
        err.print(f"wrote {output}", markup=False)
    summary = redact(result.summary(), token)
    if result.outcome == REFUSED:
        err.print(f"[bold red]{terminal.escape(summary)}[/]")
        return EXIT_REFUSED
    print(summary)
    return 0
