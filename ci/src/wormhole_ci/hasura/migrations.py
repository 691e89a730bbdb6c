"""Hasura's own migrations (`<dir>/<source>/<version>_<name>/up.sql`): layout, order, schema."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from wormhole_ci.errors import HasuraMetadataError
from wormhole_ci.hasura.model import DbSchema, SourceSchemas
from wormhole_ci.hasura.schema import apply_migrations, create_database, read_schema, shown_path
from wormhole_ci.pgtemp import temp_postgres

_VERSION_DIR = re.compile(r"^(\d+)_(.+)$")
_CONNECT_TIMEOUT = 10
_LAYOUT = "<source name>/<version>_<name>/up.sql"


def hasura_migration_files(migrations: Path, root: Path) -> dict[str, list[Path]]:
    """Each source directory's up.sql files in the order Hasura applies them (by version).

    Raises HasuraMetadataError naming the path when the layout is not Hasura config v3's.
    """
    rel = shown_path(migrations, root)
    if not migrations.is_dir():
        raise HasuraMetadataError(
            f"{rel}: Hasura migrations directory not found; create it ({_LAYOUT}, e.g. "
            "`hasura migrate create init --from-server`) or fix the service's `migrations`"
        )
    sources = sorted(p for p in migrations.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not sources:
        raise HasuraMetadataError(
            f"{rel}: no source directories; Hasura config v3 keeps migrations as {_LAYOUT}"
        )
    result: dict[str, list[Path]] = {}
    for source in sources:
        if _VERSION_DIR.match(source.name) and (source / "up.sql").exists():
            raise HasuraMetadataError(
                f"{shown_path(source, root)}: a migration directly under {rel} (config v2 layout); "
                f"move it under a source directory ({_LAYOUT}, "
                "`hasura scripts update-project-v3` does this)"
            )
        result[source.name] = _source_files(source, root)
    return result


def _source_files(source: Path, root: Path) -> list[Path]:
    versions: dict[int, Path] = {}
    for entry in sorted(source.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        match = _VERSION_DIR.match(entry.name)
        if match is None:
            raise HasuraMetadataError(
                f"{shown_path(entry, root)}: not a migration directory: the name must be "
                "<version>_<name> with a numeric version (e.g. 1700000000000_init)"
            )
        up = entry / "up.sql"
        if not up.is_file():
            raise HasuraMetadataError(
                f"{shown_path(up, root)}: missing; each migration directory needs an up.sql "
                "(up.yaml migrations are not supported: regenerate them as SQL)"
            )
        version = int(match.group(1))
        if version in versions:
            raise HasuraMetadataError(
                f"{shown_path(entry, root)}: version {version} is also "
                f"{shown_path(versions[version], root)}; give each migration its own version"
            )
        versions[version] = entry
    if not versions:
        raise HasuraMetadataError(
            f"{shown_path(source, root)}: no migrations; expected <version>_<name>/up.sql inside"
        )
    return [versions[v] / "up.sql" for v in sorted(versions)]


def schemas_from_hasura_migrations(migrations: Path, root: Path, bindir: Path) -> SourceSchemas:
    """Apply each source's migrations to its own database on one throwaway PostgreSQL."""
    files = hasura_migration_files(migrations, root)
    schemas: dict[str, DbSchema] = {}
    with temp_postgres(bindir) as server:
        for index, (source, ups) in enumerate(files.items()):
            dbname = f"wormhole_ci_hasura_source_{index}"
            create_database(server, dbname)
            with psycopg.connect(
                server.conninfo(dbname), autocommit=True, connect_timeout=_CONNECT_TIMEOUT
            ) as conn:
                apply_migrations(conn, ups, root)
                count = f"{len(ups)} migration{'s' if len(ups) != 1 else ''}"
                schemas[source] = read_schema(
                    conn, f"schema produced by {shown_path(migrations / source, root)} ({count})"
                )
    counts = ", ".join(f"{source}: {len(ups)}" for source, ups in files.items())
    return SourceSchemas(
        by_source=schemas,
        origin=f"schema produced by {shown_path(migrations, root)} (migrations per source: {counts})",
    )
