"""A stand-in Dagger engine on loopback: the real v0.21 GraphQL schema, recorded call chains.

The SDK under test talks to it exactly as to an engine session (HTTP POST /query with
the session token as basic auth, introspection first). Every object is a `Node` holding
the chain of fields that produced it; an object's `id` encodes that chain, so IDs passed
as arguments (a Directory mounted into a Container, a TypeDef added to a Module) can be
decoded back into chains by the tests. Leaves answer from a small model of the engine:
`withExec` outcomes chosen per argv (exit code, output, or an EXEC_ERROR like the engine's),
`Directory.export` copying from `host.directory(path)` through `filter`/`directory`,
`File.export` of an image archive written by a test-supplied function, `Container.publish`
pushing through a test-supplied function (or, without one, pushing nothing and answering
`<address>@sha256:<digest of the chain>`), `Secret.plaintext` from `setSecret`, and
`File.contents` of a file that `withNewFile` wrote into the same Directory chain.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import json
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import graphql

Step = tuple[str, str, dict[str, Any]]
"""(parent type, field, arguments) of one selection."""
ID_PREFIX = "fake-id:"


def encode_id(typename: str, chain: tuple[Step, ...]) -> str:
    payload = json.dumps({"type": typename, "chain": [list(s) for s in chain]}, sort_keys=True)
    return ID_PREFIX + base64.urlsafe_b64encode(payload.encode()).decode()


def decode_id(value: str) -> tuple[str, tuple[Step, ...]]:
    raw = json.loads(base64.urlsafe_b64decode(value.removeprefix(ID_PREFIX)))
    return raw["type"], tuple((s[0], s[1], s[2]) for s in raw["chain"])


def readable(value: Any) -> Any:
    """IDs inside arguments turned back into their chains, recursively (for assertions)."""
    if isinstance(value, str) and value.startswith(ID_PREFIX):
        return [(f, readable(a)) for _, f, a in decode_id(value)[1]]
    if isinstance(value, dict):
        return {k: readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    return value


@dataclass(frozen=True)
class Node:
    typename: str
    chain: tuple[Step, ...]


@dataclass(frozen=True)
class ExecOutcome:
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    delay: float = 0.0
    """Seconds the engine takes to answer a query that runs this exec last (outside its
    lock: other queries are answered meanwhile)."""


@dataclass
class FakeEngine:
    schema_path: Path
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    leaves: list[tuple[tuple[Step, ...], Step]] = field(default_factory=list)
    exec_rules: list[tuple[Callable[[list[str]], bool], ExecOutcome]] = field(default_factory=list)
    exec_runners: list[
        tuple[Callable[[list[str]], bool], Callable[[list[str], tuple[Step, ...]], ExecOutcome]]
    ] = field(default_factory=list)
    """Execs a test runs for real (e.g. on the host), given argv and the chain up to them."""
    requests: int = 0
    file_writer: Callable[[tuple[Step, ...], Path], None] | None = None
    """Writes the content of an exported File (e.g. an OCI archive) given its chain."""
    file_contents: Callable[[tuple[Step, ...]], str] | None = None
    """Answers `File.contents` given the File's chain (default: empty)."""
    publisher: Callable[[tuple[Step, ...], dict[str, Any]], str] | None = None
    """Does what `Container.publish` does, given the Container's chain and the publish
    arguments (e.g. pushes to a loopback registry); returns the manifest digest."""

    def __post_init__(self) -> None:
        self.schema = graphql.build_schema(self.schema_path.read_text())
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._delay = 0.0

    # -- configuration -------------------------------------------------------------
    def on_exec(self, match: Callable[[list[str]], bool], outcome: ExecOutcome) -> None:
        """Execs whose argv satisfies `match` end with `outcome` (first rule wins)."""
        self.exec_rules.append((match, outcome))

    def on_exec_run(
        self,
        match: Callable[[list[str]], bool],
        run: Callable[[list[str], tuple[Step, ...]], ExecOutcome],
    ) -> None:
        """Execs whose argv satisfies `match` end with what `run` returns (checked before
        the fixed rules). `run` is called on every evaluation of the chain: memoize."""
        self.exec_runners.append((match, run))

    def reset(self) -> None:
        self.leaves.clear()
        self.exec_rules.clear()
        self.exec_runners.clear()
        self.file_writer = None
        self.file_contents = None
        self.publisher = None

    # -- serving -------------------------------------------------------------------
    def start(self) -> int:
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                expected = "Basic " + base64.b64encode(f"{engine.token}:".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                result = engine.execute(body["query"], body.get("variables"))
                data = json.dumps(result).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # the SDK may drop a connection it no longer needs (e.g. a cancelled sibling query)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self._server.server_address[1]

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def execute(self, query: str, variables: dict[str, Any] | None) -> dict[str, Any]:
        with self._lock:
            self.requests += 1
            self._delay = 0.0
            result = graphql.graphql_sync(
                self.schema,
                query,
                root_value=Node("Query", ()),
                variable_values=variables,
                field_resolver=self._resolve,
                type_resolver=_typename,
            )
            delay = self._delay
        time.sleep(delay)
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        return out

    # -- resolution ----------------------------------------------------------------
    def _resolve(self, parent: Any, info: graphql.GraphQLResolveInfo[Any], **args: Any) -> Any:
        if not isinstance(parent, Node):  # introspection and plain values
            return graphql.default_field_resolver(parent, info, **args)
        step: Step = (info.parent_type.name, info.field_name, args)
        return_type = graphql.get_named_type(info.return_type)
        is_list = isinstance(graphql.get_nullable_type(info.return_type), graphql.GraphQLList)
        if info.field_name == "node" and info.parent_type.name == "Query":
            typename, chain = decode_id(args["id"])
            return Node(typename, chain)
        if isinstance(return_type, (graphql.GraphQLObjectType, graphql.GraphQLInterfaceType)):
            return [] if is_list else Node(return_type.name, (*parent.chain, step))
        self.leaves.append((parent.chain, step))
        return self._leaf(parent, step, return_type)

    def _leaf(self, parent: Node, step: Step, return_type: graphql.GraphQLNamedType) -> Any:
        _, name, args = step
        if name in ("id", "sync"):
            self._check_execs(parent.chain)
            return encode_id(parent.typename, parent.chain)
        if parent.typename == "Container" and name in ("exitCode", "stdout", "stderr"):
            outcome = self._check_execs(parent.chain)
            return {
                "exitCode": outcome.exit_code,
                "stdout": outcome.stdout,
                "stderr": outcome.stderr,
            }[name]
        if parent.typename == "Directory" and name == "export":
            return self._export(parent.chain, args["path"])
        if parent.typename == "File" and name == "export":
            if self.file_writer is None:
                raise graphql.GraphQLError("fake engine: no file_writer set for File.export")
            self.file_writer(parent.chain, Path(args["path"]))
            return args["path"]
        if parent.typename == "File" and name == "contents":
            self._check_execs(parent.chain)
            written = _written(parent.chain)
            if written is not None:
                return written
            return self.file_contents(parent.chain) if self.file_contents else ""
        if parent.typename == "Container" and name == "publish":
            if self.publisher is not None:
                return f"{args['address']}@{self.publisher(parent.chain, args)}"
            digest = hashlib.sha256(encode_id("Container", parent.chain).encode()).hexdigest()
            return f"{args['address']}@sha256:{digest}"
        if parent.typename == "Secret" and name == "plaintext":
            return next(a["plaintext"] for _, f, a in parent.chain if f == "setSecret")
        if isinstance(return_type, graphql.GraphQLEnumType):
            return next(iter(return_type.values))
        return {"String": "", "Int": 0, "Boolean": True, "Float": 0.0}.get(return_type.name)

    def outcome(self, argv: list[str], chain: tuple[Step, ...] = ()) -> ExecOutcome:
        for match, run in self.exec_runners:
            if match(argv):
                return run(argv, chain)
        for match, outcome in self.exec_rules:
            if match(argv):
                return outcome
        return ExecOutcome()

    def _check_execs(self, chain: tuple[Step, ...]) -> ExecOutcome:
        """The last exec's outcome; an earlier or current failing exec that expects
        success fails the whole evaluation with an EXEC_ERROR, as the engine does."""
        last = ExecOutcome()
        for index, (parent, name, args) in enumerate(chain):
            if parent != "Container" or name != "withExec":
                continue
            last = self.outcome(list(args["args"]), chain[: index + 1])
            if last.exit_code != 0 and args.get("expect", "SUCCESS") != "ANY":
                raise graphql.GraphQLError(
                    f'process "{" ".join(args["args"])}" did not complete successfully: exit code: {last.exit_code}',
                    extensions={
                        "_type": "EXEC_ERROR",
                        "cmd": list(args["args"]),
                        "exitCode": last.exit_code,
                        "stdout": last.stdout,
                        "stderr": last.stderr,
                    },
                )
        self._delay = max(self._delay, last.delay)
        return last

    def _export(self, chain: tuple[Step, ...], path: str) -> str:
        """Model of Directory.export for directories read from the host."""
        root: Path | None = None
        include: list[str] = []
        for parent, name, args in chain:
            if (parent, name) == ("Host", "directory"):
                root = Path(args["path"])
            elif (parent, name) == ("Directory", "directory") and root is not None:
                root = root / args["path"]
            elif (parent, name) == ("Directory", "filter"):
                include = list(args.get("include") or [])
        if root is None:
            raise graphql.GraphQLError(
                "fake engine: can only export directories read from the host"
            )
        target = Path(path)
        for file in root.rglob("*"):
            rel = file.relative_to(root).as_posix()
            if "node_modules/" in rel or not file.is_file():
                continue
            if include and not any(matches(rel, pattern) for pattern in include):
                continue
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target / rel)
        return path


def _written(chain: tuple[Step, ...]) -> str | None:
    """The contents of a File read back from a Directory that `withNewFile` wrote it into."""
    if not chain or chain[-1][:2] != ("Directory", "file"):
        return None
    path = chain[-1][2]["path"]
    for parent, name, args in reversed(chain[:-1]):
        if parent != "Directory":
            return None
        if name == "withNewFile" and args["path"] == path:
            return str(args["contents"])
    return None


def _typename(value: Any, *_: Any) -> str:
    return value.typename


def matches(rel: str, pattern: str) -> bool:
    """Whether a relative path matches a Directory.filter include pattern (as the engine reads it)."""
    return fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(rel, pattern.removeprefix("**/"))
