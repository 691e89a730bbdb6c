"""The CLI handlers of the checks `check` plans on the repository itself: `validate-hasura`
and `validate-delivery`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from wormhole_ci.errors import WormholeCiError

if TYPE_CHECKING:
    from rich.console import Console

    from wormhole_ci.manifest import Manifest, ServiceKind

EXIT_FAILED = 1


def validate_hasura(args: argparse.Namespace, err: Console) -> int:
    from wormhole_ci.hasura.check import validate_hasura as validate
    from wormhole_ci.manifest import ServiceKind, load_manifest

    manifest = load_manifest(args.source)
    service = args.service or _only_service(manifest, ServiceKind.HASURA, "validate-hasura")
    report = validate(manifest, service)
    print(
        f"hasura metadata of {service!r}: {len(report.tables)} tables consistent with the {report.origin}"
    )
    for table in report.tables:
        print(f"  {table}")
    return 0


def validate_delivery(args: argparse.Namespace, err: Console) -> int:
    from wormhole_ci.delivery.validate import validate_delivery as validate
    from wormhole_ci.manifest import ServiceKind, load_manifest

    manifest = load_manifest(args.source)
    service = args.service or _only_service(manifest, ServiceKind.DELIVERY, "validate-delivery")
    report = validate(manifest, service)
    for line in report.checked:
        print(f"checked {line}")
    if report.problems:
        for problem in report.problems:
            print(problem)
        err.print(
            f"delivery configuration of {service!r}: {len(report.problems)} problems",
            markup=False,
        )
        return EXIT_FAILED
    print(f"delivery configuration of {service!r}: no problems")
    return 0


def _only_service(manifest: Manifest, kind: ServiceKind, command: str) -> str:
    """The manifest's one service of `kind`; with none or several, --service must say."""
    names = [s.name for s in manifest.services if s.kind is kind]
    if len(names) != 1:
        raise WormholeCiError(
            f"{command}: {len(names)} {kind} services in the manifest; pass --service NAME"
        )
    return names[0]
