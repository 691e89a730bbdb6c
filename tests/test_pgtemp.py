"""The throwaway PostgreSQL: socket-only trust by default; opt-in loopback TCP with passwords."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import PgDatabase
from wormhole_ci.errors import ProvisionError
from wormhole_ci.pgtemp import TempPostgres

pytestmark = pytest.mark.postgres

_HBA = "SELECT type, auth_method FROM pg_hba_file_rules WHERE error IS NULL ORDER BY line_number"


def test_default_cluster_is_socket_only_with_trust(postgres: TempPostgres) -> None:
    assert postgres.host is None
    with psycopg.connect(postgres.conninfo(), connect_timeout=10) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        rules = conn.execute(_HBA).fetchall()
    assert rules and {method for _, method in rules} == {"trust"}
    with pytest.raises(ProvisionError, match=r"started without TCP"):
        postgres.url("db", "user", "pw")


def test_tcp_cluster_listens_on_loopback_only_and_wants_passwords(pg_server: TempPostgres) -> None:
    assert pg_server.host == "127.0.0.1" and pg_server.port != 5432
    # The admin keeps password-less access over the socket.
    with psycopg.connect(pg_server.conninfo(), connect_timeout=10) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        rules = conn.execute(_HBA).fetchall()
    assert {method for kind, method in rules if kind == "local"} == {"trust"}
    assert {method for kind, method in rules if kind == "host"} == {"scram-sha-256"}
    with pytest.raises(psycopg.OperationalError, match=r"password"):
        psycopg.connect(host="127.0.0.1", port=pg_server.port, user="postgres", connect_timeout=10)


def test_database_url_is_a_fresh_database_owned_by_a_password_role(
    pg_server: TempPostgres, database_url: PgDatabase
) -> None:
    url = database_url.url
    assert (url.host, url.port, url.user) == ("127.0.0.1", pg_server.port, database_url.role)
    assert url.reveal() == database_url.raw and database_url.password in url.secrets
    with psycopg.connect(database_url.raw, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT current_user, pg_get_userbyid(datdba), (SELECT count(*) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public')"
            " FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    assert row == (database_url.role, database_url.role, 0)
    with psycopg.connect(pg_server.conninfo(), connect_timeout=10) as conn:
        stored = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (database_url.role,)
        ).fetchone()
    assert stored is not None and str(stored[0]).startswith("SCRAM-SHA-256$")
    with pytest.raises(psycopg.OperationalError, match=r"password authentication failed"):
        psycopg.connect(
            host=url.host,
            port=url.port,
            user=url.user,
            dbname=url.dbname,
            password="not-" + database_url.password,
            connect_timeout=10,
        )
