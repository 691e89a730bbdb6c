import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runner.jsonvalue import JSONObject, JSONValue
from runner.steps import (
    HttpRequest,
    HttpResponse,
    StepContext,
    StepDefinition,
    StepExecutionError,
    StepRegistry,
    StepResult,
    StepValidationError,
    UrllibHttpClient,
    default_registry,
)


@dataclass
class FakeHttp:
    response: HttpResponse = field(
        default_factory=lambda: HttpResponse(
            200, {"content-type": "application/json"}, b'{"ok": true}'
        )
    )
    requests: list[HttpRequest] = field(default_factory=lambda: [])

    def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return self.response


@dataclass
class FakeSleep:
    calls: list[float] = field(default_factory=lambda: [])

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def run(
    step_type: str,
    config: JSONObject,
    data: JSONObject | None = None,
    *,
    http: FakeHttp | None = None,
    sleep: FakeSleep | None = None,
) -> StepResult:
    context = StepContext(http=http or FakeHttp(), sleep=sleep or FakeSleep())
    definition = StepDefinition(id="s1", type=step_type, config=config)
    return default_registry().run(definition, data or {}, context)


def problems(step_type: str, config: JSONObject) -> tuple[str, ...]:
    with pytest.raises(StepValidationError) as info:
        default_registry().prepare(StepDefinition(id="s1", type=step_type, config=config))
    return info.value.problems


# --- registry and definitions ------------------------------------------------------------------


def test_default_registry_has_the_builtin_types() -> None:
    assert default_registry().names() == ("delay", "http", "transform")


@dataclass
class ConstantStep:
    """A minimal custom step type: it is its own prepared step."""

    name: str

    def prepare(self, step_id: str, config: JSONObject) -> "ConstantStep":
        return self

    def run(self, data: JSONObject, context: StepContext) -> JSONValue:
        return {"custom": self.name}


def test_duplicate_registration_is_rejected() -> None:
    registry = default_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(ConstantStep("delay"))


def test_custom_step_types_can_be_registered() -> None:
    registry = StepRegistry([ConstantStep("custom")])
    result = registry.run(StepDefinition("x", "custom"), {}, StepContext())
    assert result == StepResult("x", "custom", "succeeded", output={"custom": "custom"})


def test_unknown_step_type_fails_with_known_types_listed() -> None:
    result = run("email", {})
    assert not result.ok
    assert result.error == (
        "step 's1' is invalid: unknown step type 'email' (known: delay, http, transform)"
    )


def test_definition_from_dict() -> None:
    definition = StepDefinition.from_dict({"id": "a", "type": "delay", "config": {"seconds": 1}})
    assert definition == StepDefinition("a", "delay", {"seconds": 1})
    assert StepDefinition.from_dict({"id": "b", "type": "delay"}).config == {}


def test_definition_from_dict_reports_all_problems() -> None:
    with pytest.raises(StepValidationError) as info:
        StepDefinition.from_dict({"id": "", "type": 3, "config": []})
    assert info.value.problems == (
        "id must be a non-empty string",
        "type must be a non-empty string",
        "config must be an object",
    )
    with pytest.raises(StepValidationError, match="expected an object"):
        StepDefinition.from_dict("delay")


def test_result_to_dict() -> None:
    result = StepResult("s", "delay", "failed", error="boom")
    assert result.to_dict() == {
        "step_id": "s",
        "step_type": "delay",
        "status": "failed",
        "output": None,
        "error": "boom",
    }


# --- transform ---------------------------------------------------------------------------------


def test_transform_applies_operations_in_order() -> None:
    data: JSONObject = {"user": {"name": "Ada", "email": "ada@example.com"}, "tmp": 1}
    result = run(
        "transform",
        {
            "operations": [
                {"op": "set", "path": "meta.source", "value": "signup"},
                {"op": "copy", "from": "user.email", "to": "contact.email"},
                {"op": "move", "from": "user.name", "to": "name"},
                {"op": "remove", "path": "tmp"},
                {"op": "remove", "path": "does.not.exist"},
            ]
        },
        data,
    )
    assert result.ok, result.error
    assert result.output == {
        "user": {"email": "ada@example.com"},
        "meta": {"source": "signup"},
        "contact": {"email": "ada@example.com"},
        "name": "Ada",
    }
    # The caller's input is never modified.
    assert data == {"user": {"name": "Ada", "email": "ada@example.com"}, "tmp": 1}


def test_transform_pick_keeps_only_existing_paths() -> None:
    result = run(
        "transform",
        {"operations": [{"op": "pick", "paths": ["a.b", "c", "missing"]}]},
        {"a": {"b": 1, "x": 2}, "c": [1], "d": 4},
    )
    assert result.output == {"a": {"b": 1}, "c": [1]}


def test_transform_is_deterministic() -> None:
    config: JSONObject = {"operations": [{"op": "set", "path": "n", "value": [1, {"k": "v"}]}]}
    first = run("transform", config, {"a": 1})
    second = run("transform", config, {"a": 1})
    assert first == second


def test_transform_missing_source_fails() -> None:
    result = run("transform", {"operations": [{"op": "copy", "from": "nope", "to": "x"}]})
    assert result.error == "path 'nope' does not exist"


def test_transform_cannot_set_through_a_scalar() -> None:
    result = run("transform", {"operations": [{"op": "set", "path": "a.b", "value": 1}]}, {"a": 5})
    assert result.error == "'a' is not an object"


def test_transform_validation_lists_every_problem() -> None:
    assert problems(
        "transform",
        {
            "operations": [
                {"op": "set", "path": "a..b"},
                {"op": "copy", "from": 1},
                {"op": "pick", "paths": []},
                {"op": "explode"},
                "set",
            ]
        },
    ) == (
        "operations[0].value is required",
        "operations[0].path has an empty segment: 'a..b'",
        "operations[1].from must be a non-empty dotted path",
        "operations[1].to must be a non-empty dotted path",
        "operations[2].paths must be a non-empty list",
        "operations[3].op must be one of set, copy, move, remove, pick",
        "operations[4] must be an object",
    )
    assert problems("transform", {}) == ("operations must be a non-empty list",)


# --- delay -------------------------------------------------------------------------------------


def test_delay_sleeps_through_the_context_and_passes_input_through() -> None:
    sleep = FakeSleep()
    result = run("delay", {"seconds": 2.5}, {"a": 1}, sleep=sleep)
    assert result.output == {"a": 1}
    assert sleep.calls == [2.5]


def test_zero_delay_does_not_sleep() -> None:
    sleep = FakeSleep()
    assert run("delay", {"seconds": 0}, sleep=sleep).ok
    assert sleep.calls == []


@pytest.mark.parametrize("seconds", [-1, 301, "5", True, None])
def test_delay_rejects_bad_seconds(seconds: JSONValue) -> None:
    assert problems("delay", {"seconds": seconds}) == ("seconds must be a number from 0 to 300",)


# --- http --------------------------------------------------------------------------------------


def test_http_get_decodes_json() -> None:
    http = FakeHttp()
    result = run(
        "http",
        {"url": "https://api.example.com/items", "headers": {"X-Trace": "t1"}, "timeout": 5},
        http=http,
    )
    assert result.output == {"status": 200, "body": {"ok": True}}
    assert http.requests == [
        HttpRequest("GET", "https://api.example.com/items", {"X-Trace": "t1"}, None, 5.0)
    ]


def test_http_post_sends_the_input_when_no_body_is_given() -> None:
    http = FakeHttp(HttpResponse(201, {"content-type": "text/plain"}, b"created"))
    result = run("http", {"method": "post", "url": "http://svc/x"}, {"b": 2, "a": 1}, http=http)
    assert result.output == {"status": 201, "body": "created"}
    request = http.requests[0]
    assert request.method == "POST"
    assert request.body == b'{"a":1,"b":2}'
    assert request.headers == {"Content-Type": "application/json"}


def test_http_post_sends_the_configured_body() -> None:
    http = FakeHttp()
    run("http", {"method": "PUT", "url": "http://svc/x", "body": [1, 2]}, {"a": 1}, http=http)
    assert http.requests[0].body == b"[1,2]"


def test_http_unexpected_status_fails() -> None:
    http = FakeHttp(HttpResponse(503, {}, b"down"))
    result = run("http", {"url": "http://svc/x"}, http=http)
    assert result.error == "GET http://svc/x returned unexpected status 503"


def test_http_expect_status_overrides_the_2xx_default() -> None:
    http = FakeHttp(HttpResponse(404, {}, b""))
    result = run("http", {"url": "http://svc/x", "expect_status": [404]}, http=http)
    assert result.output == {"status": 404, "body": ""}
    ok = run("http", {"url": "http://svc/x", "expect_status": [404]}, http=FakeHttp())
    assert ok.error == "GET http://svc/x returned unexpected status 200"


def test_http_invalid_json_response_fails() -> None:
    http = FakeHttp(HttpResponse(200, {"content-type": "application/json"}, b"{nope"))
    result = run("http", {"url": "http://svc/x"}, http=http)
    assert result.error is not None
    assert result.error.startswith("response body is not valid JSON")


def test_http_validation_lists_every_problem() -> None:
    assert problems(
        "http",
        {
            "method": "BREW",
            "url": "ftp://files",
            "headers": {"X-Bad": "a\nb", "X-Num": 1},
            "timeout": 0,
            "expect_status": [200, 700],
            "body": {"a": 1},
        },
    ) == (
        "method must be one of DELETE, GET, HEAD, PATCH, POST, PUT",
        "url must be an absolute http:// or https:// URL",
        "headers.X-Bad must be a single-line string",
        "headers.X-Num must be a single-line string",
        "timeout must be a number above 0 and at most 60",
        "expect_status has an invalid status code: 700",
        "body is not allowed with GET",
    )
    assert problems("http", {}) == ("url must be a non-empty string",)


# --- the real urllib client against a loopback server ------------------------------------------


class EchoHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length))
        status = 200 if self.path == "/echo" else 418
        body = json.dumps({"path": self.path, "received": payload}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_urllib_client_round_trip(echo_url: str) -> None:
    context = StepContext(http=UrllibHttpClient())
    definition = StepDefinition("post", "http", {"method": "POST", "url": f"{echo_url}/echo"})
    result = default_registry().run(definition, {"n": 1}, context)
    assert result.output == {"status": 200, "body": {"path": "/echo", "received": {"n": 1}}}


def test_urllib_client_returns_error_statuses(echo_url: str) -> None:
    response = UrllibHttpClient().send(
        HttpRequest("POST", f"{echo_url}/teapot", {}, b"{}", timeout=5)
    )
    assert response.status == 418
    assert response.headers["content-type"].startswith("application/json")


def test_urllib_client_wraps_connection_errors() -> None:
    with pytest.raises(StepExecutionError, match="failed"):
        UrllibHttpClient().send(HttpRequest("GET", "http://127.0.0.1:1/", {}, None, timeout=2))


def test_urllib_client_refuses_other_schemes() -> None:
    with pytest.raises(StepExecutionError, match="refusing"):
        UrllibHttpClient().send(HttpRequest("GET", "file:///etc/passwd", {}, None, timeout=1))
