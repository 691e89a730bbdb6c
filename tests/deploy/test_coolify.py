"""The Coolify client against the contract server on loopback (a MockTransport only for timeouts)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from time import monotonic, sleep

import httpx
import pytest

from tests.deploy.coolify_server import ALL_ABILITIES, Canned, CoolifyServer, run_coolify
from wormhole_ci.deploy.coolify import (
    SKIPPED_MESSAGE,
    Coolify,
    Deployment,
    DeploymentStatus,
    DeploymentTimeout,
)
from wormhole_ci.errors import CoolifyError
from wormhole_ci.secretref import Secret

TOKEN = "7|tok-SUPERSECRET-7f3a9c41d2"
NO_LOGS = "8|tok-nologs-b7e1c0"
READ_ONLY = "9|tok-readonly-51aa2d"
WRONG = "10|tok-revoked-e2c9f7"
API = "k1apiuuid0000000000000aa"
WEB = "w2webuuid0000000000000bb"
RUNNER = "r3runneruuid00000000000c"


@dataclass
class FakeTime:
    """A clock that moves only when the client sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list[float])

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "every wait must move time forward"
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def server() -> Iterator[CoolifyServer]:
    tokens = {
        TOKEN: ALL_ABILITIES,
        NO_LOGS: {"read", "write", "deploy"},
        READ_ONLY: {"read"},
    }
    with run_coolify(tokens) as running:
        running.add_app(API, "api", tags=["prod"])
        running.add_app(WEB, "web", tags=["prod"])
        running.add_app(RUNNER, "runner", tags=["workers"])
        yield running


Events = list[str]


@pytest.fixture
def events() -> Events:
    return []


@pytest.fixture
def make(server: CoolifyServer, events: Events) -> Iterator[Callable[..., Coolify]]:
    clients: list[Coolify] = []

    def build(
        token: str = TOKEN,
        time: FakeTime | None = None,
        *,
        poll_interval: float = 0.005,
        retry_deadline: float = 120.0,
    ) -> Coolify:
        client = Coolify(
            server.url,
            token,
            clock=time.clock if time else monotonic,
            sleep=time.sleep if time else sleep,
            poll_interval=poll_interval,
            retry_deadline=retry_deadline,
            on_event=events.append,
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def deploy_calls(server: CoolifyServer) -> list[str]:
    return [r.method for r in server.requests if r.path == "/api/v1/deploy"]


# -- the happy paths ---------------------------------------------------------------------------


def test_set_tag_deploy_by_uuid_and_wait(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    started: list[tuple[str, str]] = []
    server.on_deploy = lambda app, tag: started.append((app, tag))
    coolify = make()

    assert coolify.application(API)["docker_registry_image_tag"] == "latest"
    coolify.set_image_tag(API, "abc1234")
    (deployment,) = coolify.deploy(uuids=[API])
    status = coolify.wait(deployment, timeout=10)

    assert deployment.resource_uuid == API and not deployment.skipped
    assert deployment.message == "Application api deployment queued."
    assert status.status == "finished" and status.followed_from is None
    assert status.deployment_uuid == deployment.deployment_uuid
    assert status.logs is not None and "wormhole/api:abc1234 is running." in status.logs
    assert "docker pull" not in status.logs  # Coolify's hidden entries stay hidden
    assert started == [(API, "abc1234")]
    assert server.apps[API].running == "abc1234"
    # Only POST ever reaches /api/v1/deploy, with the uuid in the query and no `force`.
    (call,) = server.calls(path="/api/v1/deploy")
    assert call.method == "POST" and call.query == {"uuid": API} and call.body is None
    patch = server.calls("PATCH")[0]
    assert patch.body == {"docker_registry_image_tag": "abc1234"}
    assert all(r.auth for r in server.requests)


def test_deploy_several_uuids_keeps_the_requested_order(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    coolify = make()
    deployments = coolify.deploy(uuids=[WEB, API])
    assert [d.resource_uuid for d in deployments] == [WEB, API]
    assert server.calls(path="/api/v1/deploy")[0].query == {"uuid": f"{WEB},{API}"}
    for deployment in deployments:
        assert coolify.wait(deployment, timeout=10).status == "finished"
    assert deploy_calls(server) == ["POST"]


def test_deploy_by_tag_reads_the_message_and_details_shape(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    coolify = make()
    deployments = coolify.deploy(tags=["prod"])
    assert {d.resource_uuid for d in deployments} == {API, WEB}
    assert all(not d.skipped and d.message.endswith("deployment queued.") for d in deployments)
    assert server.calls(path="/api/v1/deploy")[0].query == {"tag": "prod"}
    for deployment in deployments:
        assert coolify.wait(deployment, timeout=10).status == "finished"
    assert deploy_calls(server) == ["POST"]


def test_force_is_sent_only_when_true(server: CoolifyServer, make: Callable[..., Coolify]) -> None:
    coolify = make()
    (first,) = coolify.deploy(uuids=[API])
    # PHP reads "false" as true: the contract server does too, so sending force=false would
    # have forced this one instead of being skipped.
    (second,) = coolify.deploy(uuids=[API], force=False)
    (forced,) = coolify.deploy(uuids=[API], force=True)
    queries = [r.query for r in server.calls(path="/api/v1/deploy")]
    assert queries == [{"uuid": API}, {"uuid": API}, {"uuid": API, "force": "true"}]
    assert second.skipped and not forced.skipped
    assert forced.deployment_uuid in server.deployments
    assert first.deployment_uuid != forced.deployment_uuid


def test_the_contract_server_answers_get_deploy_with_405(server: CoolifyServer) -> None:
    response = httpx.get(
        f"{server.url}/api/v1/deploy", params={"uuid": API}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 405
    assert "Supported methods: POST." in response.json()["message"]


def test_405_says_the_server_predates_post_deploys(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    server.inject("POST", "/api/v1/deploy", Canned(405, {"message": "Method Not Allowed"}))
    with pytest.raises(CoolifyError) as caught:
        make().deploy(uuids=[API])
    message = str(caught.value)
    assert "HTTP 405" in message and "4.2" in message and "POST" in message


# -- errors that say what to fix ---------------------------------------------------------------


def test_401_points_at_the_token_secret(make: Callable[..., Coolify]) -> None:
    coolify = make(WRONG)
    with pytest.raises(CoolifyError) as caught:
        coolify.deploy(uuids=[API])
    message = str(caught.value)
    assert "HTTP 401 (Unauthenticated.)" in message
    assert "invalid, expired or revoked" in message and "token secret" in message
    assert WRONG not in message


def test_403_names_the_missing_ability(make: Callable[..., Coolify]) -> None:
    with pytest.raises(CoolifyError) as caught:
        make(READ_ONLY).deploy(uuids=[API])
    message = str(caught.value)
    assert "Missing required permissions: deploy" in message
    assert "lacks the `deploy` ability" in message


def test_403_when_the_api_is_disabled_or_the_ip_not_allowed(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    coolify = make()
    server.api_enabled = False
    with pytest.raises(CoolifyError, match=r"enable API access in Coolify"):
        coolify.application(API)
    server.api_enabled, server.ip_allowed = True, False
    with pytest.raises(CoolifyError, match=r"allowed API IPs"):
        coolify.application(API)


def test_404_unknown_uuid_or_tag_names_the_config_and_the_server(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    coolify = make()
    with pytest.raises(CoolifyError) as caught:
        coolify.deploy(uuids=["nosuchapp000000000000000"])
    message = str(caught.value)
    assert "No resources found." in message and "wormhole-ci.toml" in message
    assert server.url in message and "nosuchapp000000000000000" in message
    with pytest.raises(CoolifyError, match=r"No resources found with this tag.*staging"):
        coolify.deploy(tags=["staging"])
    with pytest.raises(CoolifyError, match=r"application nosuchapp\w+ \(from wormhole-ci.toml\)"):
        coolify.application("nosuchapp000000000000000")
    with pytest.raises(CoolifyError, match=r"does not exist"):
        coolify.set_image_tag("nosuchapp000000000000000", "abc1234")


def test_an_unknown_uuid_beside_known_ones_is_not_silently_dropped(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    with pytest.raises(CoolifyError) as caught:
        make().deploy(uuids=[API, "nosuchapp000000000000000"])
    message = str(caught.value)
    assert "nosuchapp000000000000000: no such application" in message
    # It says what did happen: the known application was queued anyway.
    (queued,) = server.deployments.values()
    assert f"{API} → {queued.uuid}" in message


def test_a_tag_without_resources_is_an_error(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    server.declare_tag("empty")
    with pytest.raises(
        CoolifyError, match=r"No resources found for tag empty\..*Queued anyway: k1"
    ):
        make().deploy(tags=["prod", "empty"])


def test_400_and_422_show_coolifys_message(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    server.inject(
        "PATCH",
        f"/api/v1/applications/{API}",
        Canned(
            422,
            {
                "message": "Validation failed.",
                "errors": {"docker_registry_image_tag": ["This field is not allowed."]},
            },
        ),
    )
    with pytest.raises(CoolifyError) as caught:
        make().set_image_tag(API, "abc1234")
    assert "docker_registry_image_tag: This field is not allowed." in str(caught.value)
    server.inject("POST", "/api/v1/deploy", Canned(400, {"message": "Invalid token."}))
    with pytest.raises(CoolifyError, match=r"not tied to a team"):
        make().deploy(uuids=[API])


def test_requests_coolify_would_refuse_are_refused_before_sending(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    coolify = make()
    with pytest.raises(CoolifyError, match=r"exactly one of the two"):
        coolify.deploy(uuids=[API], tags=["prod"])
    with pytest.raises(CoolifyError, match=r"exactly one of the two"):
        coolify.deploy()
    with pytest.raises(CoolifyError, match=r"invalid Coolify application uuid"):
        coolify.deploy(uuids=["a,b"])
    with pytest.raises(CoolifyError, match=r"invalid Coolify application uuid"):
        coolify.application("../deploy")
    with pytest.raises(CoolifyError, match=r"invalid image tag"):
        coolify.set_image_tag(API, "-bad tag")
    assert server.requests == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("ftp://coolify.example", "not an http"),
        ("coolify.example:8000", "not an http"),
        ("http://admin:hunter2@coolify.example", "credentials"),
        ("http://coolify.example:8000/api/v1", "/api/v1"),
    ],
)
def test_base_url_must_be_explicit_http(url: str, problem: str) -> None:
    with pytest.raises(CoolifyError) as caught:
        Coolify(url, TOKEN)
    assert problem in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(CoolifyError, match=r"token is empty"):
        Coolify("http://127.0.0.1:9", "  \n")


# -- retries, on fake time -------------------------------------------------------------------------


def test_429_honours_retry_after(server: CoolifyServer, make: Callable[..., Coolify]) -> None:
    time = FakeTime()
    server.inject("POST", "/api/v1/deploy", Canned.too_many(1))
    (deployment,) = make(time=time).deploy(uuids=[API])
    assert time.sleeps == [1.0]
    assert deploy_calls(server) == ["POST", "POST"]
    assert deployment.deployment_uuid in server.deployments


def test_a_full_queue_past_the_deadline_fails_without_waiting_in_vain(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    time = FakeTime()
    server.queue_limit = 1
    server.queue(WEB)
    with pytest.raises(CoolifyError) as caught:
        make(time=time, retry_deadline=30).deploy(uuids=[API])
    message = str(caught.value)
    assert "Deployment queue is full" in message and "retry after 60s" in message
    assert time.sleeps == []  # Retry-After: 60 cannot fit in 30 s


def test_5xx_is_retried_with_backoff(server: CoolifyServer, make: Callable[..., Coolify]) -> None:
    time = FakeTime()
    path = f"/api/v1/applications/{API}"
    server.inject("GET", path, Canned.unavailable(503), Canned(502, {"message": "Bad gateway"}))
    assert make(time=time).application(API)["uuid"] == API
    assert time.sleeps == [0.5, 1.0]


def test_5xx_until_the_deadline_is_a_clear_error(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    time = FakeTime()
    server.inject("GET", f"/api/v1/applications/{API}", *[Canned.unavailable()] * 50)
    with pytest.raises(CoolifyError) as caught:
        make(time=time, retry_deadline=10).application(API)
    message = str(caught.value)
    assert "kept failing" in message and "HTTP 503" in message
    assert "an HTML page" in message  # a proxy's error page is named, not pasted
    assert time.sleeps == [0.5, 1.0, 2.0, 4.0]  # the next 5 s wait would pass 10 s


def test_a_dropped_connection_is_retried(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    time = FakeTime()
    server.inject("POST", "/api/v1/deploy", Canned(0, drop=True))
    (deployment,) = make(time=time).deploy(uuids=[API])
    assert time.sleeps == [0.5]
    assert deployment.deployment_uuid in server.deployments


def test_an_unreachable_server_fails_at_the_deadline(events: Events) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    time = FakeTime()
    coolify = Coolify(
        f"http://127.0.0.1:{port}",
        TOKEN,
        clock=time.clock,
        sleep=time.sleep,
        retry_deadline=3,
        on_event=events.append,
    )
    with coolify, pytest.raises(CoolifyError) as caught:
        coolify.application(API)
    assert "is unreachable" in str(caught.value) and "base URL" in str(caught.value)
    assert sum(time.sleeps) <= 3


def test_a_read_timeout_is_retried() -> None:
    # The contract server cannot time out on cue without slowing the suite: a mock can.
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json={"uuid": API, "name": "api"})

    time = FakeTime()
    coolify = Coolify(
        "http://127.0.0.1:9",
        TOKEN,
        transport=httpx.MockTransport(handler),
        clock=time.clock,
        sleep=time.sleep,
    )
    assert coolify.application(API)["name"] == "api"
    assert time.sleeps == [0.5] and len(calls) == 2


# -- following deployments ---------------------------------------------------------------------


def test_a_skipped_deploy_is_followed_to_the_queued_one(
    server: CoolifyServer, make: Callable[..., Coolify], events: Events
) -> None:
    coolify = make()
    (first,) = coolify.deploy(uuids=[API])
    (second,) = coolify.deploy(uuids=[API])
    assert second.skipped and second.message == SKIPPED_MESSAGE
    assert second.deployment_uuid not in server.deployments  # the never-saved uuid

    status = coolify.wait(second, timeout=10)

    assert status.status == "finished"
    assert status.deployment_uuid == first.deployment_uuid
    assert status.followed_from == second.deployment_uuid
    paths = [r.path for r in server.calls("GET")]
    assert paths[:2] == [
        f"/api/v1/deployments/{second.deployment_uuid}",
        f"/api/v1/deployments/applications/{API}",
    ]
    assert any("following deployment" in e for e in events)


def test_a_skipped_deploy_whose_original_already_ended_returns_it(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    coolify = make()
    (first,) = coolify.deploy(uuids=[API])
    (second,) = coolify.deploy(uuids=[API])
    coolify.wait(first, timeout=10)
    status = coolify.wait(second, timeout=10)
    assert status.deployment_uuid == first.deployment_uuid and status.status == "finished"


def test_a_tag_deploy_marks_the_skipped_application(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    coolify = make()
    (api,) = coolify.deploy(uuids=[API])
    deployments = {d.resource_uuid: d for d in coolify.deploy(tags=["prod"])}
    assert deployments[API].skipped and not deployments[WEB].skipped
    assert coolify.wait(deployments[API], timeout=10).deployment_uuid == api.deployment_uuid
    assert coolify.wait(deployments[WEB], timeout=10).followed_from is None


def test_a_vanished_deployment_that_was_not_skipped_is_an_error(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    ghost = Deployment(API, "ghost0000000000000000000", "queued", skipped=False)
    with pytest.raises(CoolifyError, match=r"deployment ghost0+ of application .* does not exist"):
        make().wait(ghost, timeout=10)


def test_failed_stops_polling_and_shows_the_log(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    server.script(API, "queued", "in_progress", "failed", logs=["Error: manifest unknown: abc1234"])
    coolify = make()
    (deployment,) = coolify.deploy(uuids=[API])
    with pytest.raises(CoolifyError) as caught:
        coolify.wait(deployment, timeout=10)
    message = str(caught.value)
    assert f"deployment {deployment.deployment_uuid} of application {API} failed" in message
    assert "Error: manifest unknown: abc1234" in message
    assert len(server.calls("GET", f"/api/v1/deployments/{deployment.deployment_uuid}")) == 3


def test_cancelled_by_user_stops_polling_with_the_log(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    server.script(API, "queued", "cancelled-by-user")
    coolify = make()
    (deployment,) = coolify.deploy(uuids=[API])
    with pytest.raises(CoolifyError) as caught:
        coolify.wait(deployment, timeout=10)
    assert "was cancelled by a user" in str(caught.value)
    assert "Deployment cancelled by user." in str(caught.value)
    assert len(server.calls("GET", f"/api/v1/deployments/{deployment.deployment_uuid}")) == 2


def test_a_failure_without_read_sensitive_says_the_log_is_hidden(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    server.script(API, "failed", logs=["Error: secret stuff"])
    coolify = make(NO_LOGS)
    (deployment,) = coolify.deploy(uuids=[API])
    with pytest.raises(CoolifyError) as caught:
        coolify.wait(deployment, timeout=10)
    assert "lacks read:sensitive" in str(caught.value)
    assert "secret stuff" not in str(caught.value)


def test_a_failing_on_deploy_hook_fails_the_deployment(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    def refuse(app: str, tag: str) -> None:
        raise RuntimeError(f"container {app}:{tag} exited with code 1")

    server.on_deploy = refuse
    coolify = make()
    (deployment,) = coolify.deploy(uuids=[API])
    with pytest.raises(CoolifyError, match=r"(?s)failed.*exited with code 1"):
        coolify.wait(deployment, timeout=10)
    assert server.apps[API].running is None


def test_a_deployment_that_never_finishes_hits_the_deadline(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    time = FakeTime()
    server.script(API, "queued", "in_progress")
    coolify = make(time=time, poll_interval=2.0)
    (deployment,) = coolify.deploy(uuids=[API])
    with pytest.raises(CoolifyError) as caught:
        coolify.wait(deployment, timeout=30)
    message = str(caught.value)
    assert deployment.deployment_uuid in message and "within 30s" in message
    assert "last status was in_progress" in message
    assert sum(time.sleeps) == pytest.approx(30) and max(time.sleeps) <= 2.0


def test_logs_need_read_sensitive(server: CoolifyServer, make: Callable[..., Coolify]) -> None:
    (deployment,) = make().deploy(uuids=[API])
    logs = make().logs(deployment.deployment_uuid)
    assert logs is not None and f"Deployment {deployment.deployment_uuid} queued." in logs
    assert make(NO_LOGS).logs(deployment.deployment_uuid) is None


def test_busy_lists_applications_with_a_queued_or_running_deployment(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    coolify = make()
    assert coolify.busy([API, WEB]) == []
    queued = server.queue(WEB)  # e.g. a push deployed from Coolify's UI
    assert coolify.busy([API, WEB]) == [WEB]
    coolify.wait(Deployment(WEB, queued, "", skipped=False), timeout=10)
    assert coolify.busy([API, WEB]) == []
    assert [d["deployment_uuid"] for d in coolify.deployments_of(WEB)] == [queued]


def test_deployments_of_also_reads_a_bare_list() -> None:
    # The OpenAPI text documents a bare array; the server sends {"count", "deployments"}.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"deployment_uuid": "d1", "status": "queued"}])

    coolify = Coolify("http://127.0.0.1:9", TOKEN, transport=httpx.MockTransport(handler))
    assert coolify.busy([API]) == [API]


# -- rollback ------------------------------------------------------------------------------------


def ship(coolify: Coolify, tag: str) -> None:
    coolify.set_image_tag(API, tag)
    (deployment,) = coolify.deploy(uuids=[API])
    coolify.wait(deployment, timeout=10)


def test_rollback_uses_coolifys_endpoint(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    coolify = make()
    ship(coolify, "v1")
    ship(coolify, "v2")
    deployment = coolify.rollback(API)
    assert deployment is not None and not deployment.skipped
    assert coolify.wait(deployment, timeout=10).status == "finished"
    assert server.apps[API].running == "v1"
    (call,) = server.calls("POST", f"/api/v1/applications/{API}/rollback")
    assert call.body is None

    explicit = coolify.rollback(API, to="v2")
    assert explicit is not None
    coolify.wait(explicit, timeout=10)
    assert server.apps[API].running == "v2"
    assert server.calls("POST", f"/api/v1/applications/{API}/rollback")[1].body == {"commit": "v2"}


def test_rollback_is_none_without_the_endpoint(
    server: CoolifyServer, make: Callable[..., Coolify], events: Events
) -> None:
    server.rollback_enabled = False
    coolify = make()
    assert coolify.rollback(API) is None
    assert any("no rollback endpoint" in e for e in events)
    # An unknown application is still an error, not a missing endpoint.
    with pytest.raises(CoolifyError, match=r"does not exist"):
        coolify.rollback("nosuchapp000000000000000")


def test_wait_all_polls_every_deployment_against_one_deadline(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    time = FakeTime()
    server.hang(API, WEB, RUNNER)
    coolify = make(time=time, poll_interval=2.0)
    deployments = coolify.deploy(uuids=[API, WEB, RUNNER])
    started = time.now
    outcomes = coolify.wait_all(deployments, timeout=20)
    # one deadline for the three, not 3 x 20 s
    assert time.now - started == pytest.approx(20) and max(time.sleeps) <= 2.0
    assert [type(o) for o in outcomes] == [DeploymentTimeout] * 3
    for outcome, app in zip(outcomes, (API, WEB, RUNNER), strict=True):
        assert isinstance(outcome, DeploymentTimeout)
        assert outcome.application == app and outcome.last_status == "in_progress"
        assert "within 20s" in str(outcome)


def test_wait_all_returns_each_end_without_stopping_at_the_first_failure(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    server.script(API, "queued", "failed", logs=["boom"])
    coolify = make()
    deployments = coolify.deploy(uuids=[API, WEB])
    failed, finished = coolify.wait_all(deployments, timeout=10)
    assert isinstance(failed, CoolifyError) and "boom" in str(failed)
    assert isinstance(finished, DeploymentStatus) and finished.status == "finished"


def test_cancelled_with_an_empty_log_blames_no_permission(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    server.script(API, "queued", "cancelled-by-user", empty_log=True)
    coolify = make()
    (deployment,) = coolify.deploy(uuids=[API])
    with pytest.raises(CoolifyError) as caught:
        coolify.wait(deployment, timeout=10)
    message = str(caught.value)
    assert "was cancelled by a user; Coolify returned no log lines" in message
    assert "read:sensitive" not in message


def test_a_missing_log_after_logs_were_read_blames_no_permission(
    server: CoolifyServer, make: Callable[..., Coolify]
) -> None:
    coolify = make()
    ship(coolify, "v1")  # this token read a deployment's log
    ghost = "c4nc3lled000000000000000"
    row = {"deployment_uuid": ghost, "status": "cancelled-by-user"}  # no `logs` field
    server.inject("GET", f"/api/v1/deployments/{ghost}", Canned(200, row))
    with pytest.raises(CoolifyError) as caught:
        coolify.wait(Deployment(API, ghost, "", skipped=False), timeout=10)
    assert "Coolify returned no log lines" in str(caught.value)
    assert "read:sensitive" not in str(caught.value)


def test_rollback_images_newest_first(server: CoolifyServer, make: Callable[..., Coolify]) -> None:
    coolify = make()
    server.apps[API].images = [
        ("old1234", "2026-01-01T00:00:00.000000Z"),
        ("new5678", "2026-03-01T00:00:00.000000Z"),
        ("mid9abc", "2026-02-01T00:00:00.000000Z"),
    ]
    images = coolify.rollback_images(API)
    assert [i.tag for i in images] == ["new5678", "mid9abc", "old1234"]
    assert not any(i.is_current for i in images)
    ship(coolify, "mid9abc")
    newest = coolify.rollback_images(API)[0]
    assert (newest.tag, newest.is_current) == ("mid9abc", True)
    server.rollback_enabled = False  # a Coolify before 4.3: no list, no error
    assert coolify.rollback_images(API) == []


def test_the_rollback_body_takes_only_the_commit(server: CoolifyServer) -> None:
    response = httpx.post(
        f"{server.url}/api/v1/applications/{API}/rollback",
        json={"commit": "v1", "force": True},
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"},
    )
    assert response.status_code == 422 and "force" in response.json()["errors"]


# -- the token stays secret ----------------------------------------------------------------------


def test_the_token_appears_in_no_message_repr_or_event(
    server: CoolifyServer,
    make: Callable[..., Coolify],
    events: Events,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []

    def failure(action: Callable[[], object]) -> None:
        with pytest.raises(CoolifyError) as caught:
            action()
        messages.append(str(caught.value))

    time = FakeTime()
    coolify = make(time=time, retry_deadline=5)
    messages.append(repr(coolify))
    failure(lambda: make(WRONG).deploy(uuids=[API]))
    failure(lambda: make(READ_ONLY).deploy(uuids=[API]))
    failure(lambda: coolify.deploy(uuids=["nosuchapp000000000000000"]))
    # A server (or proxy) that echoes the Authorization header back.
    server.inject("POST", "/api/v1/deploy", Canned(400, {"message": f"bad header Bearer {TOKEN}"}))
    failure(lambda: coolify.deploy(uuids=[API]))
    server.inject("GET", f"/api/v1/applications/{API}", *[Canned.too_many(1)] * 10)
    failure(lambda: coolify.application(API))
    server.inject("GET", f"/api/v1/applications/{WEB}", *[Canned(500, {"message": TOKEN})] * 10)
    failure(lambda: coolify.application(WEB))
    # A deployment whose log printed the token.
    server.script(API, "queued", "failed", logs=[f"curl -H 'Authorization: Bearer {TOKEN}'"])
    (deployment,) = coolify.deploy(uuids=[API])
    failure(lambda: coolify.wait(deployment, timeout=10))
    logs = coolify.logs(deployment.deployment_uuid)
    secret = Coolify(server.url, Secret("env:COOLIFY_TOKEN", TOKEN))
    messages.append(repr(secret))
    secret.close()

    assert len(messages) == 9 and events
    assert "***" in messages[4] and "***" in messages[7]
    for text in [*messages, *events, caplog.text, logs or ""]:
        assert TOKEN not in text
        assert WRONG not in text
