"""Workflow step execution.

A step definition is ``{"id": ..., "type": ..., "config": {...}}``. Each step type turns its
config into a prepared step (validating it up front, reporting every problem at once) and the
prepared step runs against the step's input object. Everything a step does to the outside
world goes through the injected :class:`StepContext`, so the same definition, input and
context always give the same result.

Built-in types:

``transform``
    Applies ``operations`` in order to a copy of the input object. Operations use dotted paths:
    ``{"op": "set", "path": "a.b", "value": ...}``, ``{"op": "copy", "from": "a", "to": "b"}``,
    ``{"op": "move", "from": "a", "to": "b"}``, ``{"op": "remove", "path": "a"}`` and
    ``{"op": "pick", "paths": ["a", "b.c"]}``. Output: the transformed object.
``delay``
    Waits ``seconds`` (0 to 300) through ``context.sleep``. Output: the input, unchanged.
``http``
    Sends ``method`` to ``url`` (http or https) with optional ``headers``, ``timeout``
    (seconds, default 10) and ``expect_status`` (default: any 2xx). POST, PUT and PATCH send
    ``body`` as JSON, or the step input when ``body`` is absent. Output:
    ``{"status": ..., "body": ...}`` where a JSON response body is decoded.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import urlsplit

from runner.jsonvalue import JSONObject, JSONValue, to_json_object, to_json_value


class StepError(Exception):
    """Base class for step failures that are reported in a step result."""


class StepValidationError(StepError):
    """A step definition or its config is invalid. ``problems`` lists every issue found."""

    def __init__(self, step_id: str, problems: Iterable[str]) -> None:
        self.step_id = step_id
        self.problems = tuple(problems)
        super().__init__(f"step {step_id!r} is invalid: " + "; ".join(self.problems))


class StepExecutionError(StepError):
    """A valid step failed while running."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    timeout: float


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpClient(Protocol):
    def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; return any HTTP response, raise ``StepExecutionError`` if none."""
        ...


class UrllibHttpClient:
    """:class:`HttpClient` on the standard library. Error statuses are returned, not raised."""

    def send(self, request: HttpRequest) -> HttpResponse:
        scheme = urlsplit(request.url).scheme
        if scheme not in {"http", "https"}:
            raise StepExecutionError(f"refusing to send to a {scheme!r} URL")
        req = urllib.request.Request(  # noqa: S310 - scheme checked above
            request.url, data=request.body, headers=dict(request.headers), method=request.method
        )
        try:
            with urllib.request.urlopen(req, timeout=request.timeout) as resp:  # noqa: S310
                return HttpResponse(
                    status=resp.status, headers=_lower_keys(resp.headers.items()), body=resp.read()
                )
        except urllib.error.HTTPError as err:
            with err:
                return HttpResponse(
                    status=err.code, headers=_lower_keys(err.headers.items()), body=err.read()
                )
        except (urllib.error.URLError, OSError) as err:
            raise StepExecutionError(f"{request.method} {request.url} failed: {err}") from err


def _lower_keys(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {key.lower(): value for key, value in items}


@dataclass(frozen=True, slots=True)
class StepContext:
    """Side effects available to steps."""

    http: HttpClient = field(default_factory=UrllibHttpClient)
    sleep: Callable[[float], None] = time.sleep


class PreparedStep(Protocol):
    def run(self, data: JSONObject, context: StepContext) -> JSONValue: ...


class StepType(Protocol):
    @property
    def name(self) -> str: ...

    def prepare(self, step_id: str, config: JSONObject) -> PreparedStep:
        """Validate ``config``; raise :class:`StepValidationError` listing every problem."""
        ...


@dataclass(frozen=True, slots=True)
class StepDefinition:
    id: str
    type: str
    config: JSONObject = field(default_factory=lambda: {})

    @classmethod
    def from_dict(cls, payload: object) -> StepDefinition:
        """Parse an untyped mapping such as decoded JSON."""
        try:
            data = to_json_object(payload, "step")
        except ValueError as err:
            raise StepValidationError("?", [str(err)]) from None
        raw_id = data.get("id")
        step_id = raw_id if isinstance(raw_id, str) and raw_id else "?"
        problems: list[str] = []
        if step_id == "?":
            problems.append("id must be a non-empty string")
        step_type = data.get("type")
        if not isinstance(step_type, str) or not step_type:
            problems.append("type must be a non-empty string")
            step_type = ""
        config = data.get("config", {})
        if not isinstance(config, dict):
            problems.append("config must be an object")
            config = {}
        if problems:
            raise StepValidationError(step_id, problems)
        return cls(id=step_id, type=step_type, config=config)


@dataclass(frozen=True, slots=True)
class StepResult:
    step_id: str
    step_type: str
    status: Literal["succeeded", "failed"]
    output: JSONValue = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def to_dict(self) -> JSONObject:
        return {
            "step_id": self.step_id,
            "step_type": self.step_type,
            "status": self.status,
            "output": self.output,
            "error": self.error,
        }


class StepRegistry:
    """Maps step type names to implementations."""

    def __init__(self, step_types: Iterable[StepType] = ()) -> None:
        self._types: dict[str, StepType] = {}
        for step_type in step_types:
            self.register(step_type)

    def register(self, step_type: StepType) -> None:
        if step_type.name in self._types:
            raise ValueError(f"step type {step_type.name!r} is already registered")
        self._types[step_type.name] = step_type

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._types))

    def prepare(self, definition: StepDefinition) -> PreparedStep:
        step_type = self._types.get(definition.type)
        if step_type is None:
            known = ", ".join(self.names()) or "none"
            raise StepValidationError(
                definition.id, [f"unknown step type {definition.type!r} (known: {known})"]
            )
        return step_type.prepare(definition.id, definition.config)

    def run(self, definition: StepDefinition, data: JSONObject, context: StepContext) -> StepResult:
        """Validate and run ``definition``; step errors become a failed result."""
        try:
            output = self.prepare(definition).run(deepcopy(data), context)
        except StepError as err:
            return StepResult(definition.id, definition.type, "failed", error=str(err))
        return StepResult(definition.id, definition.type, "succeeded", output=output)


def default_registry() -> StepRegistry:
    return StepRegistry([TransformStep(), DelayStep(), HttpStep()])


# --- transform -----------------------------------------------------------------------------


def _parse_path(value: JSONValue, where: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, str) or not value:
        problems.append(f"{where} must be a non-empty dotted path")
        return ()
    parts = tuple(value.split("."))
    if any(not part for part in parts):
        problems.append(f"{where} has an empty segment: {value!r}")
        return ()
    return parts


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _lookup(data: JSONObject, path: tuple[str, ...]) -> JSONValue:
    node: JSONValue = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise StepExecutionError(f"path {_dotted(path)!r} does not exist")
        node = node[part]
    return node


def _parent(data: JSONObject, path: tuple[str, ...], *, create: bool) -> JSONObject | None:
    node = data
    for index, part in enumerate(path[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            if not create:
                return None
            if child is not None:
                raise StepExecutionError(f"{_dotted(path[: index + 1])!r} is not an object")
            child = {}
            node[part] = child
        node = child
    return node


def _assign(data: JSONObject, path: tuple[str, ...], value: JSONValue) -> None:
    parent = _parent(data, path, create=True)
    if parent is not None:
        parent[path[-1]] = deepcopy(value)


def _remove(data: JSONObject, path: tuple[str, ...]) -> None:
    parent = _parent(data, path, create=False)
    if parent is not None:
        parent.pop(path[-1], None)


@dataclass(frozen=True, slots=True)
class _Operation:
    op: Literal["set", "copy", "move", "remove", "pick"]
    paths: tuple[tuple[str, ...], ...]
    value: JSONValue = None

    def apply(self, data: JSONObject) -> JSONObject:
        if self.op == "set":
            _assign(data, self.paths[0], self.value)
        elif self.op in {"copy", "move"}:
            source, target = self.paths
            value = _lookup(data, source)
            if self.op == "move":
                _remove(data, source)
            _assign(data, target, value)
        elif self.op == "remove":
            _remove(data, self.paths[0])
        else:
            picked: JSONObject = {}
            for path in self.paths:
                try:
                    value = _lookup(data, path)
                except StepExecutionError:
                    continue
                _assign(picked, path, value)
            return picked
        return data


@dataclass(frozen=True, slots=True)
class _PreparedTransform:
    operations: tuple[_Operation, ...]

    def run(self, data: JSONObject, context: StepContext) -> JSONValue:
        result = data
        for operation in self.operations:
            result = operation.apply(result)
        return result


class TransformStep:
    name = "transform"

    def prepare(self, step_id: str, config: JSONObject) -> PreparedStep:
        problems: list[str] = []
        raw_ops = config.get("operations")
        if not isinstance(raw_ops, list) or not raw_ops:
            raise StepValidationError(step_id, ["operations must be a non-empty list"])
        operations: list[_Operation] = []
        for index, raw in enumerate(raw_ops):
            where = f"operations[{index}]"
            if not isinstance(raw, dict):
                problems.append(f"{where} must be an object")
                continue
            op = raw.get("op")
            if op == "set":
                if "value" not in raw:
                    problems.append(f"{where}.value is required")
                path = _parse_path(raw.get("path"), f"{where}.path", problems)
                operations.append(_Operation("set", (path,), raw.get("value")))
            elif op == "copy" or op == "move":
                source = _parse_path(raw.get("from"), f"{where}.from", problems)
                target = _parse_path(raw.get("to"), f"{where}.to", problems)
                operations.append(_Operation("copy" if op == "copy" else "move", (source, target)))
            elif op == "remove":
                path = _parse_path(raw.get("path"), f"{where}.path", problems)
                operations.append(_Operation("remove", (path,)))
            elif op == "pick":
                raw_paths = raw.get("paths")
                if not isinstance(raw_paths, list) or not raw_paths:
                    problems.append(f"{where}.paths must be a non-empty list")
                    continue
                paths = tuple(
                    _parse_path(item, f"{where}.paths[{i}]", problems)
                    for i, item in enumerate(raw_paths)
                )
                operations.append(_Operation("pick", paths))
            else:
                problems.append(f"{where}.op must be one of set, copy, move, remove, pick")
        if problems:
            raise StepValidationError(step_id, problems)
        return _PreparedTransform(tuple(operations))


# --- delay ---------------------------------------------------------------------------------

MAX_DELAY_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class _PreparedDelay:
    seconds: float

    def run(self, data: JSONObject, context: StepContext) -> JSONValue:
        if self.seconds > 0:
            context.sleep(self.seconds)
        return data


class DelayStep:
    name = "delay"

    def prepare(self, step_id: str, config: JSONObject) -> PreparedStep:
        seconds = config.get("seconds")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= MAX_DELAY_SECONDS
        ):
            raise StepValidationError(
                step_id, [f"seconds must be a number from 0 to {MAX_DELAY_SECONDS:g}"]
            )
        return _PreparedDelay(float(seconds))


# --- http ----------------------------------------------------------------------------------

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DEFAULT_HTTP_TIMEOUT = 10.0
MAX_HTTP_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class _PreparedHttp:
    method: str
    url: str
    headers: Mapping[str, str]
    body: JSONValue
    send_input: bool
    timeout: float
    expect_status: frozenset[int]

    def run(self, data: JSONObject, context: StepContext) -> JSONValue:
        headers = dict(self.headers)
        body: bytes | None = None
        if self.method in BODY_METHODS:
            payload = data if self.send_input else self.body
            body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
            if not any(key.lower() == "content-type" for key in headers):
                headers["Content-Type"] = "application/json"
        response = context.http.send(
            HttpRequest(self.method, self.url, headers, body, self.timeout)
        )
        if self.expect_status:
            accepted = response.status in self.expect_status
        else:
            accepted = 200 <= response.status < 300
        if not accepted:
            raise StepExecutionError(
                f"{self.method} {self.url} returned unexpected status {response.status}"
            )
        return {"status": response.status, "body": _decode_body(response)}


def _decode_body(response: HttpResponse) -> JSONValue:
    content_type = response.headers.get("content-type", "")
    text = response.body.decode("utf-8", errors="replace")
    if "json" in content_type.split(";", 1)[0] and text.strip():
        try:
            return to_json_value(json.loads(text), "response body")
        except ValueError as err:
            raise StepExecutionError(f"response body is not valid JSON: {err}") from err
    return text


class HttpStep:
    name = "http"

    def prepare(self, step_id: str, config: JSONObject) -> PreparedStep:
        problems: list[str] = []
        method = config.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
            problems.append(f"method must be one of {', '.join(sorted(HTTP_METHODS))}")
            method = "GET"
        method = method.upper()

        url = config.get("url")
        if not isinstance(url, str) or not url:
            problems.append("url must be a non-empty string")
            url = ""
        else:
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                problems.append("url must be an absolute http:// or https:// URL")

        headers: dict[str, str] = {}
        raw_headers = config.get("headers", {})
        if not isinstance(raw_headers, dict):
            problems.append("headers must be an object of strings")
        else:
            for key, value in raw_headers.items():
                if not isinstance(value, str) or "\n" in value or "\r" in value:
                    problems.append(f"headers.{key} must be a single-line string")
                else:
                    headers[key] = value

        timeout = config.get("timeout", DEFAULT_HTTP_TIMEOUT)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= MAX_HTTP_TIMEOUT
        ):
            problems.append(f"timeout must be a number above 0 and at most {MAX_HTTP_TIMEOUT:g}")
            timeout = DEFAULT_HTTP_TIMEOUT

        expect: set[int] = set()
        raw_expect = config.get("expect_status", [])
        if not isinstance(raw_expect, list):
            problems.append("expect_status must be a list of status codes")
        else:
            for item in raw_expect:
                if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 599:
                    problems.append(f"expect_status has an invalid status code: {item!r}")
                else:
                    expect.add(item)

        if "body" in config and method not in BODY_METHODS:
            problems.append(f"body is not allowed with {method}")

        if problems:
            raise StepValidationError(step_id, problems)
        return _PreparedHttp(
            method=method,
            url=url,
            headers=headers,
            body=config.get("body"),
            send_input="body" not in config,
            timeout=float(timeout),
            expect_status=frozenset(expect),
        )
