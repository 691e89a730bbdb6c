"""The native Hasura check for one manifest service: pick the schema source, run the checks."""

from __future__ import annotations

from wormhole_ci.errors import HasuraMetadataError, ProvisionError
from wormhole_ci.hasura.migrations import schemas_from_hasura_migrations
from wormhole_ci.hasura.model import DbSchema, SourceSchemas
from wormhole_ci.hasura.schema import schema_from_migrations, schema_from_prisma
from wormhole_ci.hasura.validate import MetadataReport, check_project
from wormhole_ci.manifest import Manifest, ServiceKind
from wormhole_ci.pgtemp import find_bindir


def database_schema(manifest: Manifest, service: str) -> DbSchema | SourceSchemas:
    """The schema of the hasura service's database: migrations on a throwaway PostgreSQL
    when its binaries exist, else (Prisma only) the Prisma datamodel from the generated client.

    Hasura's own migrations (`migrations = "<dir>"`) give one schema per database source and
    have no fallback: without the binaries this raises ProvisionError saying how to get them.
    """
    spec = manifest.service(service)
    bindir = find_bindir()
    if spec.migrations is not None:
        migrations = manifest.root / spec.path / spec.migrations
        if bindir is None:
            raise ProvisionError(
                f"{spec.path}/{spec.migrations}: PostgreSQL server binaries (initdb, pg_ctl, "
                f"postgres) are needed to check hasura service {service!r}, whose schema comes "
                "from Hasura migrations (there is no datamodel fallback); install them "
                "(Debian/Ubuntu: apt-get install postgresql-15) or point WORMHOLE_CI_PG_BINDIR "
                "at their directory"
            )
        return schemas_from_hasura_migrations(migrations, manifest.root, bindir)
    db_service = manifest.service(spec.database or "")
    service_dir = manifest.root / db_service.path
    if bindir is not None:
        return schema_from_migrations(service_dir / "prisma" / "migrations", manifest.root, bindir)
    return schema_from_prisma(service_dir, manifest.root)


def validate_hasura(manifest: Manifest, service: str) -> MetadataReport:
    """Check the Hasura project of `service` against its database; raise when inconsistent."""
    spec = manifest.service(service)
    if spec.kind is not ServiceKind.HASURA:
        raise HasuraMetadataError(f"service {service!r} is of kind {spec.kind}, not hasura")
    schema = database_schema(manifest, service)
    report = check_project(manifest.root / spec.path, schema, manifest.root)
    if report.problems:
        lines = "\n".join(f"  {p}" for p in report.problems)
        raise HasuraMetadataError(
            f"hasura metadata of {service!r} is inconsistent with the {report.origin} "
            f"({len(report.problems)} problems):\n{lines}"
        )
    return report
