"""A Hasura v2 metadata-API contract server for the tests, checked against a real PostgreSQL.

`run_hasura(conninfo, admin_secret)` starts it on 127.0.0.1:<free port> (a
ThreadingHTTPServer, never another address) and yields a `HasuraServer`. It serves
`POST /v1/metadata` as graphql-engine v2 does; where each behaviour comes from:

- Request envelope `{type, version?, resource_version?, args}`; `export_metadata` v1 answers
  the metadata object, v2 `{"resource_version", "metadata"}`; `replace_metadata` v1 takes the
  metadata as `args`, v2 `{allow_inconsistent_metadata, metadata}` (told apart by the
  `metadata` key, as the engine's `ReplaceMetadata` parser does):
  https://hasura.io/docs/latest/api-reference/metadata-api/manage-metadata/ and
  hasura/graphql-engine server/src-lib/Hasura/RQL/DDL/Metadata/Types.hs.
- A `resource_version` that is not the stored one → 409
  `{"path": "$", "error": "metadata resource version referenced (N) did not match current
  version", "code": "conflict"}`; every successful replace bumps it by one:
  server/src-lib/Hasura/RQL/DDL/Schema/Catalog.hs (`setMetadataInCatalog`, `throw409`).
- Inconsistent metadata with `allow_inconsistent_metadata` false (and always with v1) →
  400 `{"path": "$.args", "error": "cannot continue due to inconsistent metadata", "code":
  "unexpected", "internal": [{definition, name, reason, type}]}`, nothing stored; true →
  stored, and the answer (like every replace's) is `{"is_consistent", "inconsistent_objects"}`:
  server/src-lib/Hasura/RQL/DDL/Schema/Cache.hs (`buildSchemaCacheStrict`), Metadata.hs
  (`runReplaceMetadataV2` … `formatInconsistentObjs`), and the engine's own API tests
  (server/tests-py and the Haskell API tests: the 400 body with `internal`).
- `get_inconsistent_metadata` → `{"is_consistent", "inconsistent_objects"}`;
  `reload_metadata` → `{"message": "success", "is_consistent", ...}`: Metadata.hs.
- Object names as `moiName` builds them: "table users in source default",
  "select_permission user in table users in source default", "object_relation tenant in
  table users in source default" (types "table", "<kind>_permission", "object_relation" /
  "array_relation"); a table in schema public is named without it:
  server/src-lib/Hasura/RQL/Types/Metadata/Object.hs. The reasons' wording is ours.
- Auth: a wrong `X-Hasura-Admin-Secret` → 401 `{"path": "$", "error": "invalid
  x-hasura-admin-secret/x-hasura-access-key", "code": "access-denied"}`; none (and no
  unauthorized role) → 401 "x-hasura-admin-secret/x-hasura-access-key required, but not
  found": server/src-lib/Hasura/Server/Auth.hs (`throw401`), Hasura/Base/Error.hs
  (`throw401 = err401 AccessDenied`). The issue's "401" holds.

Consistency is not canned: each replace, reload and get_inconsistent_metadata reads the
database's tables, columns and foreign keys (information_schema / pg_constraint, via
`wormhole_ci.hasura.schema`) and reports every tracked table that does not exist, every
relationship whose columns or foreign key are missing, and every permission naming a
column (in `columns`, `set`, or a `filter`/`check` expression, through relationships) the
table lacks. Actions, remote schemas, event triggers and computed fields are not checked.

Knobs: `metadata` / `resource_version` / `inconsistent_objects` (read them), `edit_live(md)`
(a console edit: stored as is, version bumped), `on_export` (run after an export's answer
is taken, before it is sent: an `edit_live` there lands between export and replace),
`on_replace` (run with the request body before a replace is processed), `fail_next(type,
status, body)` (canned answers, FIFO), `down()` (stop listening: connection refused),
`requests` (every request: method, path, type, body, headers; the tests assert the secret
is only ever in the header). `GET /healthz` answers 200 "OK" like the engine's.

`example_database(pg_server)` makes a database holding the example's migrated schema (the
migrations' SQL run with psycopg: no Prisma, fast) for the engine to be checked against.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
from collections import deque
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

from tests.conftest import EXAMPLE, new_password
from wormhole_ci.hasura.model import DbSchema, DbTable, TableName
from wormhole_ci.hasura.schema import read_schema
from wormhole_ci.jsonish import as_dict, as_list
from wormhole_ci.pgtemp import TempPostgres, create_role_and_database, drop_role_and_database

EXAMPLE_MIGRATIONS = EXAMPLE / "api" / "prisma" / "migrations"

EMPTY: dict[str, object] = {"version": 3, "sources": []}
"""What a fresh engine without a metadata database source exports."""
_OPS = frozenset({"_and", "_or", "_not", "_exists"})


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    type: str | None
    body: object
    headers: dict[str, str]


@dataclass
class HasuraServer:
    """The engine's state; the tests read and change it between requests."""

    conninfo: str
    admin_secret: str
    url: str = ""
    metadata: dict[str, object] = field(default_factory=lambda: copy.deepcopy(EMPTY))
    resource_version: int = 1
    inconsistent_objects: list[dict[str, object]] = field(default_factory=list[dict[str, object]])
    requests: list[Logged] = field(default_factory=list[Logged])
    on_export: Callable[[], None] | None = None
    on_replace: Callable[[object], None] | None = None
    canned: dict[str, deque[tuple[int, object]]] = field(
        default_factory=dict[str, deque[tuple[int, object]]]
    )
    lock: threading.RLock = field(default_factory=threading.RLock)
    _stop: Callable[[], None] | None = None

    def edit_live(self, metadata: Mapping[str, object]) -> None:
        """A console edit: the metadata is stored as given and resource_version bumped."""
        with self.lock:
            self.metadata = copy.deepcopy(dict(metadata))
            self.resource_version += 1
            self.inconsistent_objects = self.check(self.metadata)

    def fail_next(self, type_: str, status: int, body: object) -> None:
        """Answer the next request of `type_` with `status` and `body` instead."""
        with self.lock:
            self.canned.setdefault(type_, deque()).append((status, body))

    def down(self) -> None:
        """Stop listening: every later request is refused at the TCP level."""
        if self._stop is not None:
            self._stop()
            self._stop = None

    def calls(self, type_: str | None = None) -> list[Logged]:
        return [r for r in self.requests if type_ is None or r.type == type_]

    # -- consistency against the real database -------------------------------------

    def schema(self) -> DbSchema:
        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10) as conn:
            return read_schema(conn, "contract server database")

    def check(self, metadata: Mapping[str, object]) -> list[dict[str, object]]:
        """Hasura's inconsistent objects of `metadata` against the database now."""
        schema = self.schema()
        out: list[dict[str, object]] = []
        for source in map(as_dict, as_list(metadata.get("sources")) or []):
            if source is None:
                continue
            name = str(source.get("name"))
            tables = [t for t in map(as_dict, as_list(source.get("tables")) or []) if t]
            rels: dict[TableName, dict[str, TableName | None]] = {}
            for entry in tables:
                out.extend(_check_table(entry, name, schema, rels))
            for entry in tables:
                out.extend(_check_permissions(entry, name, schema, rels))
        return out


# -- the checks ------------------------------------------------------------------------


def _qualified(raw: object) -> TableName:
    spec = as_dict(raw)
    if spec is None:
        return ("public", str(raw))
    return (str(spec.get("schema", "public")), str(spec.get("name")))


def _text(table: TableName) -> str:
    """Hasura's `toTxt` of a Postgres table: the schema only when it is not public."""
    return table[1] if table[0] == "public" else f"{table[0]}.{table[1]}"


def _object(
    type_: str, name: str, table: TableName, source: str, reason: str, definition: object
) -> dict[str, object]:
    where = f"table {_text(table)} in source {source}"
    full = where if type_ == "table" else f"{type_} {name} in {where}"
    return {"definition": definition, "name": full, "reason": reason, "type": type_}


def _check_table(
    entry: dict[str, object],
    source: str,
    schema: DbSchema,
    rels: dict[TableName, dict[str, TableName | None]],
) -> list[dict[str, object]]:
    table = _qualified(entry.get("table"))
    db = schema.tables.get(table)
    if db is None:
        reason = f'Inconsistent object: no such table/view exists in source: "{_text(table)}"'
        return [_object("table", "", table, source, reason, entry.get("table"))]
    out: list[dict[str, object]] = []
    found = rels.setdefault(table, {})
    for kind in ("object_relationships", "array_relationships"):
        type_ = "object_relation" if kind.startswith("object") else "array_relation"
        for rel in map(as_dict, as_list(entry.get(kind)) or []):
            if rel is None:
                continue
            name = str(rel.get("name"))
            remote, problem = _relationship(kind, rel, db, schema)
            if problem is None:
                found[name] = remote
                continue
            reason = f'Inconsistent object: in table "{_text(table)}": in relationship "{name}": {problem}'
            out.append(_object(type_, name, table, source, reason, rel))
    return out


def _relationship(
    kind: str, rel: Mapping[str, object], db: DbTable, schema: DbSchema
) -> tuple[TableName | None, str | None]:
    """The remote table of a relationship, or the reason it is inconsistent."""
    using = as_dict(rel.get("using")) or {}
    manual = as_dict(using.get("manual_configuration"))
    if manual is not None:
        remote = _qualified(manual.get("remote_table"))
        remote_db = schema.tables.get(remote)
        if remote_db is None:
            return None, f'table "{_text(remote)}" does not exist'
        for here, there in (as_dict(manual.get("column_mapping")) or {}).items():
            if here not in db.columns:
                return None, f'no such column exists: "{here}"'
            if str(there) not in remote_db.columns:
                return None, f'no such column exists in table "{_text(remote)}": "{there}"'
        return remote, None
    fk_on = using.get("foreign_key_constraint_on")
    spec = as_dict(fk_on)
    if kind == "array_relationships" and spec is not None:
        remote = _qualified(spec.get("table"))
        remote_db = schema.tables.get(remote)
        if remote_db is None:
            return None, f'table "{_text(remote)}" does not exist'
        columns = _columns(spec.get("columns", spec.get("column")))
        missing = [c for c in columns if c not in remote_db.columns]
        if missing:
            return None, f'no such column exists in table "{_text(remote)}": "{missing[0]}"'
        if not any(
            set(fk.columns) == set(columns) and fk.ref_table == db.name
            for fk in remote_db.foreign_keys
        ):
            return None, "no foreign constraint exists on the given column(s)"
        return remote, None
    columns = _columns(spec.get("columns", spec.get("column")) if spec else fk_on)
    missing = [c for c in columns if c not in db.columns]
    if missing:
        return None, f'no such column exists: "{missing[0]}"'
    for fk in db.foreign_keys:
        if set(fk.columns) == set(columns):
            return fk.ref_table, None
    return None, "no foreign constraint exists on the given column(s)"


def _columns(raw: object) -> list[str]:
    items = as_list(raw)
    return [str(c) for c in items] if items is not None else [str(raw)]


def _check_permissions(
    entry: dict[str, object],
    source: str,
    schema: DbSchema,
    rels: Mapping[TableName, Mapping[str, TableName | None]],
) -> list[dict[str, object]]:
    table = _qualified(entry.get("table"))
    db = schema.tables.get(table)
    if db is None:
        return []  # the table itself is reported; Hasura drops its dependents silently
    out: list[dict[str, object]] = []
    for kind in ("insert", "select", "update", "delete"):
        for perm in map(as_dict, as_list(entry.get(f"{kind}_permissions")) or []):
            if perm is None:
                continue
            role = str(perm.get("role"))
            body = as_dict(perm.get("permission")) or {}
            problem = _permission_problem(body, db, schema, rels)
            if problem is None:
                continue
            reason = (
                f'Inconsistent object: in table "{_text(table)}": in permission for role '
                f'"{role}": {problem}'
            )
            out.append(_object(f"{kind}_permission", role, table, source, reason, perm))
    return out


def _permission_problem(
    body: Mapping[str, object],
    db: DbTable,
    schema: DbSchema,
    rels: Mapping[TableName, Mapping[str, TableName | None]],
) -> str | None:
    columns = body.get("columns")
    named = [] if columns == "*" else [str(c) for c in as_list(columns) or []]
    named += list((as_dict(body.get("set")) or {}).keys())
    for column in named:
        if column not in db.columns:
            return f'no such column exists: "{column}"'
    for key in ("filter", "check"):
        problem = _expression_problem(body.get(key), db, schema, rels)
        if problem is not None:
            return f"in {key}: {problem}"
    return None


def _expression_problem(
    expr: object,
    db: DbTable,
    schema: DbSchema,
    rels: Mapping[TableName, Mapping[str, TableName | None]],
) -> str | None:
    items = as_list(expr)
    if items is not None:
        for item in items:
            problem = _expression_problem(item, db, schema, rels)
            if problem is not None:
                return problem
        return None
    mapping = as_dict(expr)
    if mapping is None:
        return None
    for key, value in mapping.items():
        if key in _OPS:
            if key == "_exists":
                continue  # names another table; not followed here
            problem = _expression_problem(value, db, schema, rels)
        elif key in db.columns:
            continue  # a column and its operators
        elif key in rels.get(db.name, {}):
            remote = rels[db.name][key]
            remote_db = schema.tables.get(remote) if remote else None
            if remote_db is None:
                return f'relationship "{key}" is inconsistent'
            problem = _expression_problem(value, remote_db, schema, rels)
        else:
            return f'no such column or relationship exists in table "{_text(db.name)}": "{key}"'
        if problem is not None:
            return problem
    return None


# -- the API ---------------------------------------------------------------------------


class _Answer(Exception):
    def __init__(self, status: int, body: object) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _error(status: int, error: str, code: str, path: str = "$", **extra: object) -> _Answer:
    return _Answer(status, {"path": path, "error": error, "code": code, **extra})


def _handle(server: HasuraServer, headers: Mapping[str, str], body: object) -> object:
    secret = headers.get("x-hasura-admin-secret") or headers.get("x-hasura-access-key")
    if secret is None:
        raise _error(
            401,
            "x-hasura-admin-secret/x-hasura-access-key required, but not found",
            "access-denied",
        )
    if secret != server.admin_secret:
        raise _error(401, "invalid x-hasura-admin-secret/x-hasura-access-key", "access-denied")
    request = as_dict(body)
    if request is None or not isinstance(request.get("type"), str):
        raise _error(400, 'key "type" not found', "parse-failed")
    type_ = str(request["type"])
    with server.lock:
        pending = server.canned.get(type_)
        if pending:
            status, canned = pending.popleft()
            raise _Answer(status, canned)
    args = request.get("args")
    if type_ == "export_metadata":
        with server.lock:
            metadata = copy.deepcopy(server.metadata)
            answer = (
                {"resource_version": server.resource_version, "metadata": metadata}
                if request.get("version") == 2
                else metadata
            )
        if server.on_export is not None:
            server.on_export()  # after the snapshot: an edit here lands between export and replace
        return answer
    if type_ == "replace_metadata":
        if server.on_replace is not None:
            server.on_replace(body)
        return _replace(server, request, args)
    if type_ in ("get_inconsistent_metadata", "reload_metadata"):
        with server.lock:
            server.inconsistent_objects = server.check(server.metadata)
            found = copy.deepcopy(server.inconsistent_objects)
        answer: dict[str, object] = {"is_consistent": not found, "inconsistent_objects": found}
        return {"message": "success", **answer} if type_ == "reload_metadata" else answer
    raise _error(
        400, f"unknown metadata command {type_!r} (this contract server)", "parse-failed", "$.type"
    )


def _replace(server: HasuraServer, request: Mapping[str, object], args: object) -> object:
    mapping = as_dict(args)
    if mapping is None:
        raise _error(400, "expected Object for args", "parse-failed", "$.args")
    v2 = "metadata" in mapping
    metadata = as_dict(mapping["metadata"]) if v2 else mapping
    if metadata is None:
        raise _error(400, "expected Object for metadata", "parse-failed", "$.args.metadata")
    allow = v2 and mapping.get("allow_inconsistent_metadata") is True
    with server.lock:
        expected = request.get("resource_version")
        if expected is not None and expected != server.resource_version:
            raise _error(
                409,
                f"metadata resource version referenced ({expected}) did not match current version",
                "conflict",
            )
        found = server.check(metadata)
        if found and not allow:
            raise _error(
                400,
                "cannot continue due to inconsistent metadata",
                "unexpected",
                "$.args",
                internal=found,
            )
        server.metadata = copy.deepcopy(metadata)
        server.resource_version += 1
        server.inconsistent_objects = found
    return {"is_consistent": not found, "inconsistent_objects": found}


class _Handler(BaseHTTPRequestHandler):
    server_version = "hasura-contract"
    state: HasuraServer

    def do_POST(self) -> None:
        state = self.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: object = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        type_ = (as_dict(body) or {}).get("type")
        with state.lock:
            state.requests.append(
                Logged("POST", self.path, str(type_) if type_ else None, body, headers)
            )
        if self.path != "/v1/metadata":
            self._send(404, {"path": "$", "error": "resource does not exist", "code": "not-found"})
            return
        try:
            self._send(200, _handle(state, headers, body))
        except _Answer as answer:
            self._send(answer.status, answer.body)

    def do_GET(self) -> None:
        if self.path == "/healthz":  # the engine's health endpoint answers a plain "OK"
            data = b"OK"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._send(405, {"path": "$", "error": "only POST is allowed", "code": "not-supported"})

    def _send(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return  # keep pytest's output clean


@contextmanager
def example_database(pg_server: TempPostgres) -> Generator[str]:
    """A database with the example's migrations applied as plain SQL; its URL."""
    token = secrets.token_hex(4)
    role, dbname, password = f"wci_hasura_{token}", f"wci_hasura_{token}", new_password()
    create_role_and_database(pg_server, role, password, dbname)
    url = pg_server.url(dbname, role, password)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for file in sorted(EXAMPLE_MIGRATIONS.glob("*/migration.sql")):
                conn.execute(file.read_bytes())
        yield url
    finally:
        drop_role_and_database(pg_server, role, dbname)


@contextmanager
def run_hasura(
    conninfo: str, admin_secret: str, *, metadata: Mapping[str, object] | None = None
) -> Generator[HasuraServer]:
    """A contract engine on 127.0.0.1:<free port> over the database at `conninfo`."""
    state = HasuraServer(conninfo, admin_secret)
    if metadata is not None:
        state.metadata = copy.deepcopy(dict(metadata))
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{int(httpd.server_address[1])}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)

    state._stop = stop
    try:
        yield state
    finally:
        stop()
