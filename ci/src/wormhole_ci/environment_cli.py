"""The CLI handlers that read or change one environment's live state outside a release:
`hasura-apply` and `drift`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

EXIT_FAILED = 1


def hasura_apply(args: argparse.Namespace, err: Console) -> int:
    from wormhole_ci import terminal
    from wormhole_ci.deploy.coolify import Coolify
    from wormhole_ci.errors import WormholeCiError
    from wormhole_ci.hasura.apply import HasuraApplyFailed
    from wormhole_ci.hasura.environment import apply_environment, hasura_run
    from wormhole_ci.manifest import MANIFEST_NAME, load_manifest
    from wormhole_ci.secretref import redact, resolve_secret

    manifest = load_manifest(args.source)
    env = manifest.environment(args.environment)
    if env.hasura is None:
        raise WormholeCiError(
            f"{manifest.root / MANIFEST_NAME}: environments.{env.name} has no [hasura] table: "
            "add url and admin_secret (see docs/hasura.md)"
        )
    where = f"environments.{env.name}.hasura.admin_secret"
    admin = resolve_secret(f"env:{env.hasura.admin_secret}", where)
    run = hasura_run(manifest, env, admin.reveal())
    assert run is not None  # env.hasura is set
    hidden = [admin.reveal()]
    coolify = None
    if env.hasura.application and not args.dry_run:
        token_where = f"environments.{env.name}.secrets.coolify_token"
        token = resolve_secret(f"env:{env.secrets['coolify_token']}", token_where)
        hidden.append(token.reveal())
        coolify = Coolify(env.coolify_url, token)

    def say(line: str) -> None:
        err.print(redact(line, *hidden), markup=False)

    try:
        result = apply_environment(
            run,
            coolify=coolify,
            say=say,
            deploy_timeout=env.deploy_timeout,
            health_timeout=env.verify_timeout,
            dry_run=args.dry_run,
        )
    except HasuraApplyFailed as exc:
        _write(args.output, exc.result.to_dict(), hidden, err)

        err.print(
            f"[bold red]hasura-apply {exc.result.outcome}:[/] {terminal.escape(redact(str(exc), *hidden))}"
        )
        return EXIT_FAILED
    finally:
        if coolify is not None:
            coolify.close()
    _write(args.output, result.to_dict(), hidden, err)
    for change in result.changes:
        print(f"  {change.action:8} {change.object}")
    print(f"hasura-apply {result.outcome}: {env.name} {env.hasura.url}: {result.detail}")
    return 0


def drift(args: argparse.Namespace, err: Console) -> int:
    from wormhole_ci.drift.run import areas_of, drift_secrets, run_drift
    from wormhole_ci.images.spec import check_sha
    from wormhole_ci.manifest import load_manifest
    from wormhole_ci.secretref import redact
    from wormhole_ci.toolchains import default_cache_dir

    manifest = load_manifest(args.source)
    env = manifest.environment(args.environment)
    expect = check_sha(args.expect_sha, "--expect-sha") if args.expect_sha else None
    areas = areas_of(env, args.only)
    secrets = drift_secrets(env, areas)
    hidden = secrets.values()
    output = (args.output or manifest.root / ".wormhole-ci" / "drift" / "drift.json").resolve()

    def say(line: str) -> None:
        err.print(line, markup=False)

    report = run_drift(
        manifest,
        env,
        areas,
        secrets,
        cache_dir=(args.cache_dir or default_cache_dir()).resolve(),
        say=say,
        expect_sha=expect,
    )
    markdown = redact(report.to_markdown(), *hidden)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(redact(report.to_json(), *hidden) + "\n", encoding="utf-8")
    output.with_suffix(".md").write_text(markdown + "\n", encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
    print(markdown)
    err.print(f"wrote {output} and {output.with_suffix('.md').name}", markup=False)
    return report.exit_code


def _write(path: Path | None, data: dict[str, object], hidden: list[str], err: Console) -> None:
    from wormhole_ci.secretref import redact

    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(json.dumps(data, indent=2), *hidden) + "\n", encoding="utf-8")
    err.print(f"wrote {path}", markup=False)
