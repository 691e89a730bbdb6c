"""The migration SQL gate: real squawk on the example's and on crafted migrations, statement
splitting, the destructive kinds, and failing closed when squawk cannot run."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from wormhole_ci.errors import MigrateError
from wormhole_ci.migrate.sqlgate import (
    BLOCKED,
    SQUAWK_DESTRUCTIVE,
    Finding,
    GateReport,
    blocked_message,
    destructive_statements,
    gate,
    parse_squawk,
    provision_squawk,
    split_statements,
    squawk_argv,
)
from wormhole_ci.toolchains import default_cache_dir

API = EXAMPLE / "api"
MIGRATION = "prisma/migrations/20260301000000_change/migration.sql"


@pytest.fixture(scope="session")
def squawk() -> str:
    """squawk-cli from the hash-locked requirements (installed into the cache once)."""
    return provision_squawk(default_cache_dir(), "tests")


def migration(root: Path, sql: str, rel: str = MIGRATION) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql, encoding="utf-8")
    return path


def fake_squawk(tmp_path: Path, body: str) -> str:
    """A stand-in squawk: answers --version like the real one, then runs `body`."""
    script = tmp_path / "squawk"
    script.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "squawk 2.70.0"; exit 0; fi\n' + body + "\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


# -- real squawk ---------------------------------------------------------------------------


def test_example_migrations_lint_with_warnings_only(squawk: str) -> None:
    files = sorted(API.glob("prisma/migrations/*/migration.sql"))
    assert len(files) == 2
    report = gate(files, API, squawk)
    assert report.squawk_version == "squawk 2.70.0"
    assert report.blocking == ()
    rules = {f.rule for f in report.findings}
    # What squawk 2.70.0 says about Prisma's generated SQL (TIMESTAMP(3), no timeouts).
    assert rules == {"prefer-timestamp-tz", "require-lock-timeout", "require-statement-timeout"}
    assert all(f.file.startswith("prisma/migrations/2026") for f in report.findings)
    first = report.lines()[0]
    assert "squawk 2.70.0" in first and "0 blocking" in first
    assert blocked_message(report) == ""
    # squawk's 0-based line 5 of the init migration is the file's line 6: created_at TIMESTAMP(3).
    tz = next(f for f in report.findings if f.rule == "prefer-timestamp-tz")
    assert tz.file == "prisma/migrations/20260101000000_init/migration.sql"
    assert tz.line == 6
    assert tz.statement.startswith('CREATE TABLE "tenants" (')


DESTRUCTIVE = [
    # (kind, SQL, squawk's rule for the same change or None, text the message names)
    ("drop-table", 'DROP TABLE "users";', "ban-drop-table", '"users"'),
    (
        "drop-table",
        'DROP TABLE IF EXISTS "a", "public"."b" CASCADE;',
        "ban-drop-table",
        '"a", "public"."b"',
    ),
    (
        "drop-column",
        'ALTER TABLE "users" DROP COLUMN "email";',
        "ban-drop-column",
        '"users"."email"',
    ),
    ("drop-column", 'ALTER TABLE ONLY "users" DROP "email";', "ban-drop-column", '"users"."email"'),
    (
        "alter-column-type",
        'ALTER TABLE "users" ALTER COLUMN "email" SET DATA TYPE VARCHAR(20);',
        "changing-column-type",
        '"users"."email"',
    ),
    (
        "alter-column-type",
        'ALTER TABLE "users" ALTER "role" TYPE TEXT;',
        "changing-column-type",
        '"users"."role"',
    ),
    (
        "add-required-column",
        'ALTER TABLE "users" ADD COLUMN "nickname" TEXT NOT NULL;',
        "adding-required-field",
        '"users"."nickname"',
    ),
    (
        "set-not-null",
        'ALTER TABLE "users" ALTER COLUMN "display_name" SET NOT NULL;',
        "adding-not-nullable-field",
        '"users"."display_name"',
    ),
    (
        "rename",
        'ALTER TABLE "users" RENAME COLUMN "display_name" TO "nickname";',
        "renaming-column",
        'column "users"."display_name" to "nickname"',
    ),
    (
        "rename",
        'ALTER TABLE "users" RENAME TO "members";',
        "renaming-table",
        'table "users" to "members"',
    ),
    ("truncate", 'TRUNCATE TABLE "workflow_runs";', None, '"workflow_runs"'),
    ("truncate", 'TRUNCATE "workflow_runs" CASCADE;', "ban-truncate-cascade", '"workflow_runs"'),
    ("delete-all", 'DELETE FROM "workflow_runs";', None, '"workflow_runs"'),
    ("drop-schema", 'DROP SCHEMA "reporting" CASCADE;', "ban-drop-schema", '"reporting"'),
    ("drop-database", 'DROP DATABASE "wormhole";', "ban-drop-database", '"wormhole"'),
]


@pytest.mark.parametrize(("kind", "sql", "squawk_rule", "names"), DESTRUCTIVE)
def test_each_destructive_change_blocks_with_file_line_and_statement(
    tmp_path: Path, squawk: str, kind: str, sql: str, squawk_rule: str | None, names: str
) -> None:
    # A Prisma-style header, then the change on line 3 (split over two lines).
    words = sql.split(" ", 2)
    body = " ".join(words[:2]) + "\n    " + words[2] if len(words) > 2 else sql
    path = migration(tmp_path, f"-- Change\n\n{body}\n")
    report = gate([path], tmp_path, squawk)
    assert [(f.rule, f.file, f.line) for f in report.blocking] == [(kind, MIGRATION, 3)]
    finding = report.blocking[0]
    assert finding.statement == sql
    assert names in finding.message
    if squawk_rule is not None:
        # squawk flagged the same statement: listed once, as ours, naming squawk's rule.
        assert f"(squawk: {squawk_rule})" in finding.message
        assert squawk_rule not in {f.rule for f in report.findings}
    message = blocked_message(report)
    assert message.splitlines()[0] == BLOCKED
    assert f"{MIGRATION}:3: {kind}:" in message
    assert sql in message


def test_squawk_destructive_rules_are_real_squawk_rules(tmp_path: Path, squawk: str) -> None:
    # Every rule name in the mapping is one squawk 2.70.0 really reports.
    sql = "\n".join(sql for _, sql, rule, _ in DESTRUCTIVE if rule) + "\n"
    path = migration(tmp_path, sql)
    done = gate([path], tmp_path, squawk)
    seen = {
        m.split("(squawk: ")[1].rstrip(")")
        for m in (f.message for f in done.blocking)
        if "(squawk: " in m
    }
    assert seen == set(SQUAWK_DESTRUCTIVE)


def test_additive_changes_do_not_block(tmp_path: Path, squawk: str) -> None:
    sql = """\
ALTER TABLE "users" ADD COLUMN "nickname" TEXT;
ALTER TABLE "users" ADD COLUMN "plan" TEXT NOT NULL DEFAULT 'free';
ALTER TABLE "users" ADD COLUMN "n" INTEGER CHECK ("n" IS NOT NULL);
ALTER TABLE "users" ADD COLUMN "lower_email" TEXT NOT NULL GENERATED ALWAYS AS (lower("email")) STORED;
ALTER TABLE "users" ALTER COLUMN "display_name" DROP NOT NULL;
ALTER TABLE "users" ALTER COLUMN "role" SET DEFAULT 'viewer';
ALTER TABLE "users" DROP CONSTRAINT "users_tenant_id_fkey";
ALTER TABLE "users" ADD CONSTRAINT "users_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE RESTRICT;
ALTER TABLE "users" RENAME CONSTRAINT "a" TO "b";
ALTER INDEX "users_email_key" RENAME TO "users_email_idx";
ALTER TYPE "run_status" ADD VALUE 'cancelled';
CREATE INDEX "users_email_idx" ON "users"("email");
DROP INDEX "users_old_idx";
UPDATE "users" SET "nickname" = "display_name" WHERE "nickname" IS NULL;
DELETE FROM "sessions" WHERE "expires_at" < now();
"""
    path = migration(tmp_path, sql)
    assert destructive_statements(path, MIGRATION) == []
    report = gate([path], tmp_path, squawk)
    assert report.blocking == ()
    assert report.warnings  # squawk still has things to say (locks, timeouts)


def test_squawk_alone_still_blocks(tmp_path: Path, squawk: str) -> None:
    # A serial column has a (volatile) default, so our gate lets it pass; squawk's
    # adding-required-field still fires (the table is rewritten under an exclusive lock),
    # and a destructive squawk rule blocks on its own.
    path = migration(tmp_path, 'ALTER TABLE "users" ADD COLUMN "seq" BIGSERIAL NOT NULL;\n')
    assert destructive_statements(path, MIGRATION) == []
    report = gate([path], tmp_path, squawk)
    assert [(f.rule, f.line, f.statement) for f in report.blocking] == [
        ("adding-required-field", 1, 'ALTER TABLE "users" ADD COLUMN "seq" BIGSERIAL NOT NULL;')
    ]


def test_prisma_generated_rename_and_enum_swap_block(tmp_path: Path, squawk: str) -> None:
    # What `prisma migrate dev` writes for a renamed field (drop + add) and a removed enum value.
    sql = """\
/*
  Warnings:

  - You are about to drop the column `display_name` on the `users` table. All the data in the column will be lost.
*/
-- AlterEnum
BEGIN;
CREATE TYPE "run_status_new" AS ENUM ('queued', 'running', 'succeeded');
ALTER TABLE "workflow_runs" ALTER COLUMN "status" DROP DEFAULT;
ALTER TABLE "workflow_runs" ALTER COLUMN "status" TYPE "run_status_new" USING ("status"::text::"run_status_new");
ALTER TYPE "run_status" RENAME TO "run_status_old";
ALTER TYPE "run_status_new" RENAME TO "run_status";
DROP TYPE "run_status_old";
ALTER TABLE "workflow_runs" ALTER COLUMN "status" SET DEFAULT 'queued';
COMMIT;

-- AlterTable
ALTER TABLE "users" DROP COLUMN "display_name",
ADD COLUMN     "nickname" TEXT NOT NULL;
"""
    path = migration(tmp_path, sql)
    report = gate([path], tmp_path, squawk)
    assert sorted((f.line, f.rule) for f in report.blocking) == [
        (10, "alter-column-type"),
        (18, "add-required-column"),
        (18, "drop-column"),
    ]
    # squawk reports the ADD COLUMN on line 19, inside the statement that starts on line 18:
    # it is merged into ours, not listed again.
    assert not {f.rule for f in report.findings} & set(SQUAWK_DESTRUCTIVE)


def test_a_glob_character_in_a_path_is_linted_as_that_file(tmp_path: Path, squawk: str) -> None:
    rel = "prisma/migrations/20260301000000_x[1]/migration.sql"
    migration(tmp_path, 'DROP TABLE "users";\n', rel)
    migration(
        tmp_path, 'DROP TABLE "other";\n', "prisma/migrations/20260301000000_x1/migration.sql"
    )
    report = gate([Path(rel)], tmp_path, squawk)
    assert [
        (f.file, f.rule, f.message.endswith("(squawk: ban-drop-table)")) for f in report.blocking
    ] == [(rel, "drop-table", True)]


def test_files_given_under_a_relative_root(
    tmp_path: Path, squawk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migration(tmp_path / "api", 'DROP TABLE "users";\n')
    monkeypatch.chdir(tmp_path)
    report = gate([Path("api") / MIGRATION], Path("api"), squawk)
    assert [(f.file, f.line) for f in report.blocking] == [(MIGRATION, 1)]


def test_no_pending_files_still_names_squawk(squawk: str, tmp_path: Path) -> None:
    report = gate([], tmp_path, squawk)
    assert report == GateReport((), "squawk 2.70.0")


# -- failing closed ------------------------------------------------------------------------


def test_no_squawk_is_an_error(tmp_path: Path) -> None:
    path = migration(tmp_path, "SELECT 1;\n")
    with pytest.raises(MigrateError, match="squawk is not available"):
        gate([path], tmp_path, None)


def test_a_missing_squawk_binary_is_an_error(tmp_path: Path) -> None:
    path = migration(tmp_path, "SELECT 1;\n")
    with pytest.raises(MigrateError, match="squawk could not be started"):
        gate([path], tmp_path, str(tmp_path / "nope" / "squawk"))


def test_a_crashing_squawk_is_an_error(tmp_path: Path) -> None:
    path = migration(tmp_path, "SELECT 1;\n")
    binary = fake_squawk(tmp_path, "echo \"thread 'main' panicked at parser.rs\" >&2; exit 101")
    with pytest.raises(MigrateError, match=r"squawk exited 101 without a report: .*panicked"):
        gate([path], tmp_path, binary)


def test_squawk_exit_1_without_a_report_is_an_error(tmp_path: Path) -> None:
    # What squawk does when it cannot find a file: exit 1 (as for findings), nothing on stdout.
    path = migration(tmp_path, "SELECT 1;\n")
    binary = fake_squawk(tmp_path, "echo 'Failed to find files' >&2; exit 1")
    with pytest.raises(MigrateError, match="squawk exited 1 without a report: Failed to find"):
        gate([path], tmp_path, binary)


def test_squawk_printing_something_else_is_an_error(tmp_path: Path) -> None:
    path = migration(tmp_path, "SELECT 1;\n")
    binary = fake_squawk(tmp_path, "echo 'all good'; exit 0")
    with pytest.raises(MigrateError, match="not its JSON report: all good"):
        gate([path], tmp_path, binary)


def test_a_hanging_squawk_times_out(tmp_path: Path) -> None:
    path = migration(tmp_path, "SELECT 1;\n")
    binary = fake_squawk(tmp_path, "exec sleep 30")
    with pytest.raises(MigrateError, match="did not finish within 1 s"):
        gate([path], tmp_path, binary, timeout=1.0)


def test_something_else_than_squawk_is_an_error(tmp_path: Path) -> None:
    binary = tmp_path / "squawk"
    binary.write_text("#!/bin/sh\necho 'usage: other'\n")
    binary.chmod(0o755)
    with pytest.raises(MigrateError, match="does not run"):
        gate([], tmp_path, str(binary))


def test_an_unreadable_migration_is_an_error(squawk: str, tmp_path: Path) -> None:
    with pytest.raises(MigrateError, match="cannot read"):
        gate([tmp_path / MIGRATION], tmp_path, squawk)


# -- pure parts ------------------------------------------------------------------------------


def test_squawk_argv_json_pg15_transaction_no_upload() -> None:
    argv = squawk_argv("/x/squawk", ["a/migration.sql", "b[1]/m*.sql"], config="/dev/null")
    assert argv == [
        "/x/squawk",
        "--reporter",
        "json",
        "--pg-version",
        "15",
        "--assume-in-transaction",
        "--config",
        "/dev/null",
        "--",
        "a/migration.sql",
        "b[[]1[]]/m[*].sql",
    ]
    assert "upload-to-github" not in argv


def test_parse_squawk_lines_statements_and_kinds(tmp_path: Path) -> None:
    migration(tmp_path, '-- c\nALTER TABLE "t"\n  DROP COLUMN "x";\nCREATE TABLE "u" ("a" INT);\n')
    output = json.dumps(
        [
            {
                "file": MIGRATION,
                "line": 2,
                "column": 2,
                "level": "Warning",
                "message": "Dropping a column may break existing clients.",
                "help": None,
                "rule_name": "ban-drop-column",
            },
            {
                "file": str(tmp_path / MIGRATION),
                "line": 3,
                "column": 20,
                "level": "Warning",
                "message": "Using 32-bit integer fields can result in hitting the max `int` limit.",
                "help": "Use 64-bit integer values instead to prevent hitting this limit.",
                "rule_name": "prefer-bigint-over-int",
            },
        ]
    )
    assert parse_squawk(output, tmp_path) == [
        Finding(
            MIGRATION,
            3,
            "ban-drop-column",
            "Dropping a column may break existing clients.",
            'ALTER TABLE "t" DROP COLUMN "x";',
            destructive=True,
        ),
        Finding(
            MIGRATION,
            4,
            "prefer-bigint-over-int",
            "Using 32-bit integer fields can result in hitting the max `int` limit. "
            "Use 64-bit integer values instead to prevent hitting this limit.",
            'CREATE TABLE "u" ("a" INT);',
            destructive=False,
        ),
    ]
    assert parse_squawk("[]", tmp_path) == []


@pytest.mark.parametrize("output", ["", "not json", '{"file": "x"}', '[{"file": "x"}]'])
def test_parse_squawk_refuses_what_is_not_its_report(tmp_path: Path, output: str) -> None:
    with pytest.raises(MigrateError, match="squawk"):
        parse_squawk(output, tmp_path)


TRICKY = """\
-- DropTable: DROP TABLE "users"; (a comment only)
/* ALTER TABLE "users" DROP COLUMN "email"; */
INSERT INTO "notes" ("body") VALUES ('x; DROP TABLE "users"; y'), ('it''s; TRUNCATE "a"');
INSERT INTO "paths" ("p") VALUES ('C:\\'); -- a standard string: the backslash is no escape
SELECT E'a\\';TRUNCATE "b";' AS "x;y";
CREATE FUNCTION "f"() RETURNS trigger AS $$
BEGIN
  DELETE FROM "audit"; -- ;
  EXECUTE 'DROP TABLE x';
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE FUNCTION "g"() RETURNS int AS $body$ SELECT 1; DROP TABLE "z"; $body$ LANGUAGE sql;
SELECT 1 # 2; ALTER TABLE "t;q" RENAME COLUMN "a;b" TO "c";
DO $x$ BEGIN PERFORM 1; END $x$;
"""


def test_split_statements_reads_strings_comments_and_dollar_quotes_as_postgresql() -> None:
    statements = split_statements(TRICKY)
    assert [(s.line, s.end_line) for s in statements] == [
        (3, 3),
        (4, 4),
        (5, 5),
        (6, 12),
        (13, 13),
        (14, 14),
        (14, 14),
        (15, 15),
    ]
    assert statements[1].text == 'INSERT INTO "paths" ("p") VALUES (\'C:\\\');'
    assert statements[2].text == 'SELECT E\'a\\\';TRUNCATE "b";\' AS "x;y";'
    assert statements[5].text == "SELECT 1 # 2;"
    assert statements[6].text == 'ALTER TABLE "t;q" RENAME COLUMN "a;b" TO "c";'


def test_only_real_statements_are_findings(tmp_path: Path) -> None:
    path = migration(tmp_path, TRICKY)
    assert [(f.line, f.rule, f.statement) for f in destructive_statements(path, MIGRATION)] == [
        (14, "rename", 'ALTER TABLE "t;q" RENAME COLUMN "a;b" TO "c";')
    ]


def test_a_do_block_is_a_warning_to_review(tmp_path: Path, squawk: str) -> None:
    path = migration(tmp_path, TRICKY)
    report = gate([path], tmp_path, squawk)
    do = [f for f in report.findings if f.rule == "unchecked-do-block"]
    assert [(f.line, f.destructive) for f in do] == [(15, False)]


def test_one_statement_with_several_kinds_gives_one_finding_per_kind(tmp_path: Path) -> None:
    path = migration(
        tmp_path,
        'ALTER TABLE "users" DROP COLUMN "a", DROP COLUMN IF EXISTS "b",\n'
        '  ADD COLUMN "c" TEXT NOT NULL, ALTER COLUMN "d" TYPE BIGINT USING ("d"::bigint);\n',
    )
    found = {f.rule: f for f in destructive_statements(path, MIGRATION)}
    assert sorted(found) == ["add-required-column", "alter-column-type", "drop-column"]
    assert '"users"."a", "users"."b"' in found["drop-column"].message
    assert all(f.line == 1 for f in found.values())


def test_long_statements_are_trimmed_to_one_line(tmp_path: Path) -> None:
    columns = ",\n".join(f'  DROP COLUMN "c{i}"' for i in range(40))
    path = migration(tmp_path, f'ALTER TABLE "users"\n{columns};\n')
    (finding,) = destructive_statements(path, MIGRATION)
    assert "\n" not in finding.statement
    assert len(finding.statement) == 200 and finding.statement.endswith("…")
