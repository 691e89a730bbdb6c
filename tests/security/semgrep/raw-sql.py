# type: ignore
# ruff: noqa
# Semgrep test target for rules/raw-sql.yaml (run with `semgrep --test`); never imported.
import sqlite3

import psycopg
from psycopg import sql
from sqlalchemy import text

TABLE = "workflows"


def unsafe(cur, session, tenant, name, limit):
    # ruleid: wormhole.python.sql-string-formatting
    cur.execute(f"SELECT * FROM users WHERE tenant = '{tenant}'")
    # ruleid: wormhole.python.sql-string-formatting
    cur.execute("DELETE FROM runs WHERE id = %s" % name)
    # ruleid: wormhole.python.sql-string-formatting
    cur.executemany("INSERT INTO t VALUES ({})".format(name), [])
    query = "SELECT * FROM runs WHERE name = '" + name + "'"
    # ruleid: wormhole.python.sql-string-formatting
    cur.execute(query)
    # ruleid: wormhole.python.sql-string-formatting
    session.execute(text(f"SELECT * FROM t LIMIT {limit}"))
    stmt = f"UPDATE t SET name = '{name}'"
    # ruleid: wormhole.python.sql-string-formatting
    session.execute(text(stmt))
    # ruleid: wormhole.python.sql-string-formatting
    cur.execute(sql.SQL(f"SELECT * FROM {tenant}"))


def safe(cur, session, tenant, name):
    # ok: wormhole.python.sql-string-formatting
    cur.execute("SELECT * FROM users WHERE tenant = %s", (tenant,))
    # ok: wormhole.python.sql-string-formatting
    session.execute(text("SELECT * FROM t WHERE name = :name"), {"name": name})
    # ok: wormhole.python.sql-string-formatting
    cur.execute(sql.SQL("SELECT * FROM {} WHERE id = %s").format(sql.Identifier(tenant)), (1,))
    # ok: wormhole.python.sql-string-formatting
    cur.execute("SELECT * FROM " + "runs")
    # ok: wormhole.python.sql-string-formatting
    cur.execute(f"SELECT count(*) FROM {TABLE}")
    # ok: wormhole.python.sql-string-formatting
    logger.info(f"looked up {name}")
    # ok: wormhole.python.sql-string-formatting
    executor.submit(f"job-{name}")
