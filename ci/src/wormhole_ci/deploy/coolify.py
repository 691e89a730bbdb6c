"""A Coolify v4 API client: set an application's image tag, deploy, follow the deployment, roll back."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import httpx

from wormhole_ci.errors import CoolifyError
from wormhole_ci.jsonish import as_dict, as_list
from wormhole_ci.secretref import Secret, redact

QUEUED = "queued"
IN_PROGRESS = "in_progress"
FINISHED = "finished"
FAILED = "failed"
CANCELLED = "cancelled-by-user"
ACTIVE = frozenset({QUEUED, IN_PROGRESS})
SKIPPED_MESSAGE = "Deployment already queued for this commit."

# Coolify uuids are cuid2 (lowercase letters and digits); anything that could leave its URL
# path segment or split a comma list is refused before it reaches a request.
_UUID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_TAG_NAME_RE = re.compile(r"^[^,\s/]{1,64}$")
_IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_APP_QUEUED_RE = re.compile(r"^Application .* deployment queued\.$")
_MAX_BACKOFF = 5.0
_LOG_TAIL_LINES = 40
_LOG_TAIL_CHARS = 4000
_USER_AGENT = "wormhole-ci"

Event = Callable[[str], None]


@dataclass(frozen=True)
class Deployment:
    """A deployment Coolify accepted for one application."""

    resource_uuid: str
    """The application's uuid."""
    deployment_uuid: str
    message: str
    """Coolify's own words for what it did."""
    skipped: bool
    """Coolify answered "Deployment already queued for this commit.": `deployment_uuid` is a
    fresh uuid it never saved (polling it gives 404); `wait()` follows the application's
    queued or running deployment instead."""


@dataclass(frozen=True)
class DeploymentStatus:
    """Where a deployment ended (or stood, for `deployments_of`)."""

    deployment_uuid: str
    """The deployment that was followed to its end (for a skipped deploy: the one it joined)."""
    status: str
    logs: str | None
    """The deployment log's visible lines, or None when the token lacks `read:sensitive`."""
    followed_from: str | None
    """For a skipped deploy: the never-saved uuid Coolify answered with."""


class NotAllQueued(CoolifyError):
    """Coolify answered a deploy without queuing a deployment for every application; `queued`
    are the ones it did queue (they run, and must be waited for)."""

    def __init__(self, message: str, queued: Sequence[Deployment]) -> None:
        super().__init__(message)
        self.queued = list(queued)


class CoolifyRefusal(CoolifyError):
    """Coolify answered a request with a 4xx that says what to fix; `status` is that code
    (401: the token, 403: the API or the token's abilities, 404: an unknown resource)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class DeploymentTimeout(CoolifyError):
    """A deployment still queued or running when its deadline passed."""

    def __init__(
        self, message: str, *, application: str, deployment_uuid: str, last_status: str
    ) -> None:
        super().__init__(message)
        self.application = application
        self.deployment_uuid = deployment_uuid
        self.last_status = last_status


@dataclass
class _Followed:
    """`wait_all`'s state for one deployment."""

    deployment: Deployment
    uuid: str
    """The deployment polled (for a skipped deploy, the one it joined)."""
    followed_from: str | None = None
    last: str | None = None


@dataclass(frozen=True)
class RollbackImage:
    """An image Coolify still holds on the host for an application (rollback-images)."""

    tag: str
    created_at: str
    is_current: bool


class Coolify:
    """The Coolify v4 API at `base_url` (`http(s)://host[:port]`), authenticated by a Bearer token.

    Transient failures (429 honouring `Retry-After`, 5xx, dropped or refused connections) are
    retried with backoff for up to `retry_deadline` seconds per call; `wait_all()` polls every
    `poll_interval` seconds, all deployments against one deadline. `clock`/`sleep` are injectable so tests
    run on fake time. The token never appears in a message, a repr or an event.
    """

    def __init__(
        self,
        base_url: str,
        token: Secret | str,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 10.0,
        retry_deadline: float = 120.0,
        poll_interval: float = 2.0,
        backoff: float = 0.5,
        on_event: Event | None = None,
    ) -> None:
        self.base_url = _parse_base_url(base_url)
        value = token.reveal() if isinstance(token, Secret) else token
        self._token = value.strip()
        if not self._token or any(c.isspace() for c in self._token):
            # Never echo the value: it is the secret, however malformed.
            raise CoolifyError(
                f"Coolify at {self.base_url}: the API token is empty or contains whitespace: "
                "check the environment's Coolify token secret (one line: the token Coolify "
                "showed under Keys & Tokens → API tokens)"
            )
        if min(timeout, retry_deadline, poll_interval, backoff) <= 0:
            raise CoolifyError(
                "Coolify client: timeout, retry_deadline, poll_interval and backoff must be "
                "positive (every wait is bounded and every retry waits)"
            )
        self._clock = clock
        self._sleep = sleep
        self._timeout = timeout
        self._retry_deadline = retry_deadline
        self._poll_interval = poll_interval
        self._backoff = backoff
        self._on_event = on_event
        self._saw_logs = False
        """An answer to this client carried a deployment log: the token may read logs."""
        self._client = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            # A redirect is a wrong base URL (http → https, a login page): following it would
            # turn the POST into a GET, which Coolify ≥ 4.2 answers with 405.
            follow_redirects=False,
            headers={
                "Authorization": f"Bearer {self._token}",
                # Without it Laravel answers an auth failure with a redirect to its login page.
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
            },
        )

    def __repr__(self) -> str:
        return f"Coolify({self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Coolify:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- applications --------------------------------------------------------------------

    def application(self, uuid: str) -> dict[str, object]:
        """The application as Coolify describes it (GET /api/v1/applications/{uuid})."""
        _check_uuid(uuid, "application uuid")
        path = f"/api/v1/applications/{uuid}"
        response = self._call("GET", path, what=f"GET application {uuid}")
        if response.status_code != 200:
            raise self._failure(response, f"GET application {uuid}", missing=_app_missing(uuid))
        body = as_dict(_json(response))
        if body is None:
            raise self._malformed(f"GET application {uuid}", "not a JSON object")
        return body

    def set_image_tag(self, uuid: str, tag: str) -> None:
        """Point a Docker-image application at `tag` (PATCH docker_registry_image_tag)."""
        _check_uuid(uuid, "application uuid")
        if not _IMAGE_TAG_RE.match(tag):
            raise CoolifyError(
                f"invalid image tag {tag!r} for application {uuid}: at most 128 of letters, "
                "digits, _ . - (not starting with . or -)"
            )
        what = f"PATCH application {uuid} docker_registry_image_tag={tag}"
        response = self._call(
            "PATCH",
            f"/api/v1/applications/{uuid}",
            json_body={"docker_registry_image_tag": tag},
            what=what,
        )
        if response.status_code not in (200, 201):
            raise self._failure(response, what, missing=_app_missing(uuid), ability="write")

    # -- deploying -----------------------------------------------------------------------

    def deploy(
        self, *, uuids: Sequence[str] = (), tags: Sequence[str] = (), force: bool = False
    ) -> list[Deployment]:
        """Queue deployments by application uuid or by Coolify tag (POST /api/v1/deploy).

        One Deployment per application Coolify queued, in its order. Services and databases
        a tag also names are started by Coolify without a deployment to follow; they are
        not returned.
        """
        if bool(uuids) == bool(tags):
            raise CoolifyError(
                "Coolify deploy: give the application uuids or the Coolify tags to deploy, "
                "exactly one of the two (Coolify refuses both or neither)"
            )
        for uuid in uuids:
            _check_uuid(uuid, "application uuid")
        for tag in tags:
            if not _TAG_NAME_RE.match(tag):
                raise CoolifyError(
                    f"invalid Coolify tag {tag!r}: a tag name has no commas, slashes or spaces"
                )
        # Query parameters, not a JSON body: Coolify before 4.0.0-beta.400 read only the query,
        # later versions read both. `force` is sent only when true: PHP reads the string
        # "false" as true, so force=false would force a rebuild.
        params = {"uuid": ",".join(uuids)} if uuids else {"tag": ",".join(tags)}
        if force:
            params["force"] = "true"
        target = f"applications {', '.join(uuids)}" if uuids else f"tags {', '.join(tags)}"
        what = f"POST /api/v1/deploy ({target})"
        # Retrying a POST that Coolify may already have queued is safe: the repeat is answered
        # "Deployment already queued for this commit." and followed like any skipped deploy.
        response = self._call("POST", "/api/v1/deploy", params=params, what=what)
        if response.status_code != 200:
            missing = (
                f"the application uuid(s) {', '.join(uuids)} in wormhole-ci.toml do not exist "
                f"on {self.base_url} (or belong to another team than the token's)"
                if uuids
                else f"no application on {self.base_url} carries the tag(s) {', '.join(tags)} "
                "named in wormhole-ci.toml (check the tag names in Coolify)"
            )
            raise self._failure(response, what, missing=missing, ability="deploy")
        body = as_dict(_json(response))
        if body is None:
            raise self._malformed(what, "not a JSON object")
        if uuids:
            return self._by_uuid(body, list(uuids), what)
        return self._by_tag(body, list(tags), what)

    def _by_uuid(self, body: dict[str, object], uuids: list[str], what: str) -> list[Deployment]:
        entries = as_list(body.get("deployments"))
        if entries is None:
            raise self._malformed(what, "no `deployments` list")
        found: dict[str, Deployment] = {}
        refused: list[str] = []
        for entry in entries:
            fields = as_dict(entry) or {}
            resource = _text(fields.get("resource_uuid"))
            message = _text(fields.get("message"))
            deployment_uuid = _text(fields.get("deployment_uuid"))
            if not resource:
                raise self._malformed(what, "a deployment without resource_uuid")
            if not deployment_uuid:
                # A service or database (started, nothing to follow), or a refusal such as
                # "Unauthorized to deploy this application.".
                refused.append(f"{resource}: {message or 'no deployment queued'}")
                continue
            found[resource] = Deployment(
                resource_uuid=resource,
                deployment_uuid=deployment_uuid,
                message=message,
                skipped=message == SKIPPED_MESSAGE,
            )
        # Coolify silently leaves out uuids it does not know when it found others.
        missing = [
            u for u in uuids if u not in found and not any(r.startswith(f"{u}:") for r in refused)
        ]
        if refused or missing:
            problems = [f"{r} (not an application Coolify deploys, or refused)" for r in refused]
            problems += [f"{u}: no such application on {self.base_url}" for u in missing]
            queued = ", ".join(f"{d.resource_uuid} → {d.deployment_uuid}" for d in found.values())
            raise NotAllQueued(
                redact(
                    "Coolify did not queue a deployment for every application: "
                    f"{'; '.join(problems)}. Queued anyway: {queued or 'none'}. Fix the "
                    "application uuids in wormhole-ci.toml (and the token's team role) and "
                    "deploy again",
                    self._token,
                ),
                list(found.values()),
            )
        return [found[u] for u in dict.fromkeys(uuids)]

    def _by_tag(self, body: dict[str, object], tags: list[str], what: str) -> list[Deployment]:
        raw_messages = body.get("message")
        messages = [_text(m) for m in as_list(raw_messages) or []] or (
            [_text(raw_messages)] if _text(raw_messages) else []
        )
        details = [as_dict(d) or {} for d in as_list(body.get("details")) or []]
        empty = [m for m in messages if m.startswith("No resources found for tag")]
        deployments: list[tuple[str, str]] = []
        for fields in details:
            resource = _text(fields.get("resource_uuid"))
            deployment_uuid = _text(fields.get("deployment_uuid"))
            if not resource or not deployment_uuid:
                raise self._malformed(what, "a detail without resource_uuid or deployment_uuid")
            deployments.append((resource, deployment_uuid))
        if empty:
            queued = ", ".join(f"{r} → {d}" for r, d in deployments)
            raise NotAllQueued(
                redact(
                    f"Coolify at {self.base_url}: {'; '.join(empty)} Queued anyway: "
                    f"{queued or 'none'}. Tag the applications in Coolify or fix the tags in "
                    "wormhole-ci.toml",
                    self._token,
                ),
                [Deployment(r, d, "", skipped=False) for r, d in deployments],
            )
        # The tag answer lists messages and deployments separately. Per application Coolify
        # adds one message and one detail in the same order, so when the application messages
        # line up with the details they are paired; otherwise every deployment is treated as
        # possibly skipped, which only matters if polling it answers 404.
        per_app = [m for m in messages if m == SKIPPED_MESSAGE or _APP_QUEUED_RE.match(m)]
        paired = len(per_app) == len(deployments)
        anything_skipped = SKIPPED_MESSAGE in messages
        result: list[Deployment] = []
        for index, (resource, deployment_uuid) in enumerate(deployments):
            message = per_app[index] if paired else " ".join(messages)
            skipped = message == SKIPPED_MESSAGE if paired else anything_skipped
            result.append(Deployment(resource, deployment_uuid, message, skipped))
        return result

    def wait(self, deployment: Deployment, *, timeout: float) -> DeploymentStatus:
        """Poll the deployment until it ends or `timeout` seconds pass.

        `finished` returns; `failed`, `cancelled-by-user` (or any status Coolify may add)
        raise CoolifyError with the log's tail when the token may read it. A skipped deploy
        is followed through the application's queued or in-progress deployment.
        """
        (outcome,) = self.wait_all([deployment], timeout=timeout)
        if isinstance(outcome, CoolifyError):
            raise outcome
        return outcome

    def wait_all(
        self, deployments: Sequence[Deployment], *, timeout: float
    ) -> list[DeploymentStatus | CoolifyError]:
        """Poll every deployment round-robin against one deadline, `timeout` seconds from now.

        One answer per deployment, in order: its DeploymentStatus when it finished, else the
        CoolifyError saying how it ended (`DeploymentTimeout` for one still queued or running
        at the deadline, naming its last status). Never raises for a single deployment: the
        caller sees every application's end, so nothing is rolled back while another
        deployment still runs unnoticed.
        """
        deadline = self._clock() + timeout
        followed = [_Followed(d, d.deployment_uuid) for d in deployments]
        outcomes: dict[int, DeploymentStatus | CoolifyError] = {}
        while True:
            for index, follow in enumerate(followed):
                if index in outcomes:
                    continue
                try:
                    status = self._poll(follow, deadline)
                except CoolifyError as exc:
                    outcomes[index] = exc
                    continue
                if status is not None:
                    outcomes[index] = status
            remaining = deadline - self._clock()
            if len(outcomes) == len(followed) or remaining <= 0:
                break
            self._sleep(min(self._poll_interval, remaining))
        for index, follow in enumerate(followed):
            if index not in outcomes:
                outcomes[index] = self._timed_out(follow, timeout)
        return [outcomes[i] for i in range(len(followed))]

    def _poll(self, follow: _Followed, deadline: float) -> DeploymentStatus | None:
        """One look at a deployment: its end (raised when not `finished`), or None while active."""
        app = follow.deployment.resource_uuid
        while True:
            fields = self._deployment(follow.uuid, deadline)
            if fields is not None:
                break
            if not follow.deployment.skipped or follow.followed_from is not None:
                raise self._error(
                    f"deployment {follow.uuid} of application {app} does not exist on "
                    f"{self.base_url} (HTTP 404): it was never queued or has been "
                    "deleted; check Coolify's deployment list for the application"
                )
            follow.followed_from = follow.uuid
            follow.uuid = self._joined(app, follow.uuid, deadline)
        status = _text(fields.get("status")) or "(none)"
        if status != follow.last:
            self._event(f"deployment {follow.uuid} of application {app}: {status}")
            follow.last = status
        if status == FINISHED:
            return DeploymentStatus(
                follow.uuid, status, self._logs_of(fields), follow.followed_from
            )
        if status not in ACTIVE:
            raise self._ended_badly(
                follow.uuid,
                app,
                status,
                self._logs_of(fields),
                follow.followed_from,
                deadline=deadline,
            )
        return None

    def _timed_out(self, follow: _Followed, timeout: float) -> DeploymentTimeout:
        app = follow.deployment.resource_uuid
        last = follow.last or "unknown (no answer yet)"
        joined = (
            f" (joined from skipped deploy {follow.followed_from})" if follow.followed_from else ""
        )
        return DeploymentTimeout(
            redact(
                f"deployment {follow.uuid} of application {app}{joined} did not finish within "
                f"{timeout:g}s; its last status was {last}. It may still be running: look at "
                f"it in Coolify ({self.base_url}), cancel it there if it is stuck, or raise the "
                "deploy timeout",
                self._token,
            ),
            application=app,
            deployment_uuid=follow.uuid,
            last_status=last,
        )

    def _joined(self, app: str, skipped_uuid: str, deadline: float) -> str:
        """The deployment a skipped deploy joined: the app's queued/in-progress one, else its newest."""
        history = self.deployments_of(app, deadline=deadline)
        active = [d for d in history if _text(d.get("status")) in ACTIVE]
        chosen = (active or history or [None])[0]
        uuid = _text((chosen or {}).get("deployment_uuid"))
        if not uuid:
            raise self._error(
                f"Coolify skipped the deploy of application {app} as already queued "
                f"(deployment {skipped_uuid}), but lists no deployment for it to follow: "
                "look at the application's deployments in Coolify and deploy again"
            )
        # The list is newest first: with nothing active any more, the newest one is the
        # deployment the skipped deploy duplicated, which ended in the meantime.
        self._event(
            f"application {app}: deploy skipped by Coolify (already queued for this commit); "
            f"following deployment {uuid}"
        )
        return uuid

    def _deployment(self, uuid: str, deadline: float) -> dict[str, object] | None:
        """GET /api/v1/deployments/{uuid}; None on 404."""
        what = f"GET deployment {uuid}"
        response = self._call("GET", f"/api/v1/deployments/{uuid}", what=what, deadline=deadline)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failure(response, what, missing="", ability="read")
        fields = as_dict(_json(response))
        if fields is None:
            raise self._malformed(what, "not a JSON object")
        return fields

    def deployments_of(
        self, app_uuid: str, *, take: int = 10, deadline: float | None = None
    ) -> list[dict[str, object]]:
        """The application's latest deployments, newest first."""
        _check_uuid(app_uuid, "application uuid")
        what = f"GET deployments of application {app_uuid}"
        response = self._call(
            "GET",
            f"/api/v1/deployments/applications/{app_uuid}",
            params={"skip": "0", "take": str(take)},
            what=what,
            deadline=deadline,
        )
        if response.status_code != 200:
            raise self._failure(response, what, missing=_app_missing(app_uuid), ability="read")
        body = _json(response)
        # {"count": n, "deployments": [...]} since v4.0; a bare list in the OpenAPI text.
        entries = as_list(body)
        if entries is None:
            entries = as_list((as_dict(body) or {}).get("deployments"))
        if entries is None:
            raise self._malformed(what, "no deployments list")
        return [d for d in (as_dict(e) for e in entries) if d is not None]

    def active_deployments(self, app_uuid: str) -> list[tuple[str, str]]:
        """(deployment uuid, status) of the application's queued or in-progress deployments,
        among its latest ones (read-only)."""
        return [
            (_text(d.get("deployment_uuid")) or "(no uuid)", _text(d.get("status")))
            for d in self.deployments_of(app_uuid)
            if _text(d.get("status")) in ACTIVE
        ]

    def busy(self, app_uuids: Sequence[str]) -> list[str]:
        """The applications that have a queued or in-progress deployment right now."""
        return [uuid for uuid in app_uuids if self.active_deployments(uuid)]

    def rollback(self, app_uuid: str, *, to: str | None = None) -> Deployment | None:
        """Ask Coolify (v4.3+) to redeploy the previous image, or `to` (an image tag/commit).

        None when the server has no rollback endpoint (404/405): the caller then sets the
        previous tag with `set_image_tag` and deploys it.
        """
        _check_uuid(app_uuid, "application uuid")
        if to is not None and not _IMAGE_TAG_RE.match(to):
            raise CoolifyError(f"invalid rollback target {to!r} for application {app_uuid}")
        what = f"POST rollback of application {app_uuid}" + (f" to {to}" if to else "")
        response = self._call(
            "POST",
            f"/api/v1/applications/{app_uuid}/rollback",
            json_body={"commit": to} if to else None,
            what=what,
        )
        if response.status_code in (404, 405):
            # An unknown application also answers 404: tell it apart from a missing endpoint
            # (this raises the clear "does not exist" error when the application is unknown).
            self.application(app_uuid)
            self._event(f"Coolify at {self.base_url} has no rollback endpoint (before v4.3)")
            return None
        if response.status_code != 200:
            raise self._failure(response, what, missing=_app_missing(app_uuid), ability="deploy")
        body = as_dict(_json(response)) or {}
        message = _text(body.get("message"))
        deployment_uuid = _text(body.get("deployment_uuid"))
        if not deployment_uuid:
            raise self._error(
                f"Coolify did not queue the rollback of application {app_uuid}: "
                f"{message or 'no deployment uuid in its answer'}"
            )
        return Deployment(app_uuid, deployment_uuid, message, message == SKIPPED_MESSAGE)

    def rollback_images(self, app_uuid: str) -> list[RollbackImage]:
        """The images Coolify (v4.3+) still holds on the host for the application, newest
        first (GET …/rollback-images); empty when it has none, cannot inspect the server, or
        predates the endpoint (404/405)."""
        _check_uuid(app_uuid, "application uuid")
        what = f"GET rollback images of application {app_uuid}"
        path = f"/api/v1/applications/{app_uuid}/rollback-images"
        response = self._call("GET", path, what=what)
        if response.status_code in (404, 405):
            self.application(app_uuid)  # an unknown application: the clear error
            return []
        if response.status_code != 200:
            raise self._failure(response, what, missing=_app_missing(app_uuid), ability="read")
        images = as_list((as_dict(_json(response)) or {}).get("images"))
        if images is None:
            raise self._malformed(what, "no `images` list")
        found: list[RollbackImage] = []
        for entry in images:
            fields = as_dict(entry) or {}
            tag = _text(fields.get("tag"))
            if _IMAGE_TAG_RE.match(tag):
                created = _text(fields.get("created_at"))
                found.append(RollbackImage(tag, created, fields.get("is_current") is True))
        # ISO 8601 timestamps sort as text; the stable sort keeps Coolify's order for ties.
        return sorted(found, key=lambda image: image.created_at, reverse=True)

    def logs(self, deployment_uuid: str) -> str | None:
        """The deployment's log, or None when Coolify left it out (the token lacks the
        `read:sensitive` ability)."""
        _check_uuid(deployment_uuid, "deployment uuid")
        deadline = self._clock() + self._retry_deadline
        fields = self._deployment(deployment_uuid, deadline)
        if fields is None:
            raise self._error(
                f"deployment {deployment_uuid} does not exist on {self.base_url} (HTTP 404)"
            )
        return self._logs_of(fields)

    def _logs_of(self, fields: Mapping[str, object]) -> str | None:
        if "logs" not in fields:
            return None  # left out by Coolify: hidden from the token, or never written
        self._saw_logs = True
        return redact(_log_text(fields.get("logs")), self._token)

    # -- HTTP ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send until an answer that is not transient, within the retry deadline."""
        started = self._clock()
        limit = started + self._retry_deadline
        if deadline is not None:
            limit = min(limit, deadline)
        attempt = 0
        while True:
            remaining = limit - self._clock()
            # No single attempt may outlive the call's deadline.
            timeout = httpx.Timeout(max(0.1, min(self._timeout, remaining)))
            retry_after: float | None = None
            refused = False
            try:
                response = self._client.request(
                    method,
                    path,
                    params=dict(params) if params else None,
                    json=json_body,
                    timeout=timeout,
                )
            except httpx.TransportError as exc:
                # Coolify restarts itself on upgrades: a refused or dropped connection is
                # retried like a 503, and the deadline ends it when the address is wrong.
                last = _reason(exc)
                refused = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            else:
                if 300 <= response.status_code < 400:
                    raise self._error(
                        f"Coolify at {self.base_url} redirected {what} to "
                        f"{response.headers.get('Location', '(nowhere)')!s:.200} (HTTP "
                        f"{response.status_code}): the base URL is wrong (http instead of "
                        "https, or a path in front of the API); give the address Coolify's "
                        "API answers on"
                    )
                if response.status_code != 429 and response.status_code < 500:
                    return response
                last = f"HTTP {response.status_code}{_summary(response)}"
                retry_after = _retry_after(response)
            # Honour Retry-After exactly; otherwise (or for Retry-After: 0) back off.
            delay = (
                retry_after
                if retry_after is not None and retry_after > 0
                else min(self._backoff * 2**attempt, _MAX_BACKOFF)
            )
            if self._clock() + delay > limit:
                raise self._gave_up(what, last, self._clock() - started, retry_after, refused)
            self._event(f"Coolify: {what} answered {last}; retrying in {delay:g}s")
            self._sleep(delay)
            attempt += 1

    # -- errors --------------------------------------------------------------------------

    def _error(self, message: str) -> CoolifyError:
        # The one way messages leave this class: whatever a server echoed, never the token.
        return CoolifyError(redact(message, self._token))

    def _event(self, text: str) -> None:
        if self._on_event is not None:
            self._on_event(redact(text, self._token))

    def _gave_up(
        self, what: str, last: str, elapsed: float, retry_after: float | None, refused: bool
    ) -> CoolifyError:
        if last.startswith("HTTP 429"):
            wait = f" (it asked to retry after {retry_after:g}s)" if retry_after else ""
            return self._error(
                f"Coolify at {self.base_url} kept refusing {what} as too many requests: "
                f"{last}{wait}, for {elapsed:.0f}s. Its deployment queue is full or the "
                "token's rate limit is reached; wait for running deployments to finish (or "
                "raise the server's concurrent build limit) and retry"
            )
        if refused:
            return self._error(
                f"Coolify at {self.base_url} is unreachable ({last}) after {elapsed:.0f}s of "
                "retries: check the Coolify base URL configured for this environment and that "
                "the server is running and reachable from this machine"
            )
        return self._error(
            f"Coolify at {self.base_url} kept failing on {what} ({last}) for {elapsed:.0f}s: "
            "the server is unhealthy or restarting; check its logs and retry later"
        )

    def _failure(
        self,
        response: httpx.Response,
        what: str,
        *,
        missing: str,
        ability: str = "read",
    ) -> CoolifyError:
        """A message that says what to fix for a 4xx answer."""
        code = response.status_code
        message = _message(response)
        said = f" ({message})" if message else ""
        base = self.base_url
        if code == 401:
            text = (
                f"Coolify at {base} rejected the API token on {what} (HTTP 401{said}): the "
                "token is invalid, expired or revoked; check the environment's Coolify token "
                "secret (create a new token under Keys & Tokens → API tokens)"
            )
        elif code == 403:
            text = f"Coolify at {base} refused {what} (HTTP 403{said}): " + _forbidden_fix(
                message, ability
            )
        elif code == 404:
            text = f"Coolify answered 404{said} to {what}: " + (
                missing or f"Coolify at {base} has no such resource"
            )
        elif code == 405:
            text = (
                f"Coolify at {base} rejected the method of {what} (HTTP 405{said}): the server "
                f"does not take {response.request.method} there. Coolify before 4.2 may take "
                "only GET for a deploy, while wormhole-ci sends POST only (what 4.2+ requires): "
                "upgrade Coolify, or check that a proxy in front of it passes the method through"
            )
        elif code == 400 and message == "Invalid token.":
            text = (
                f"Coolify at {base} rejected the token on {what} (HTTP 400 Invalid token.): it "
                "is not tied to a team; create the token inside the team that owns the "
                "applications"
            )
        elif code in (400, 422):
            text = (
                f"Coolify at {base} rejected {what} (HTTP {code}{said}): fix what Coolify "
                "describes (the application's settings, or the values in wormhole-ci.toml)"
            )
        else:
            text = f"Coolify at {base} answered HTTP {code}{said} to {what}"
        return CoolifyRefusal(redact(text, self._token), status=code)

    def _malformed(self, what: str, problem: str) -> CoolifyError:
        return self._error(
            f"Coolify at {self.base_url} answered {what} with {problem}: the base URL may point "
            "at something other than Coolify's API, or the Coolify version is unsupported"
        )

    def _ended_badly(
        self,
        uuid: str,
        app: str,
        status: str,
        logs: str | None,
        followed_from: str | None,
        *,
        deadline: float,
    ) -> CoolifyError:
        joined = f" (joined from skipped deploy {followed_from})" if followed_from else ""
        no_lines = (
            "Coolify returned no log lines; look at the deployment in Coolify's deployment view"
        )
        if logs is None and self._logs_hidden(app, deadline):
            tail = (
                "its log is hidden from this token (it lacks read:sensitive: Coolify leaves "
                f"the log out of every deployment of {app}); read it in Coolify's "
                "deployment view"
            )
        elif logs is None or not logs.strip():
            tail = no_lines
        else:
            tail = "the end of its log:\n" + _tail(logs)
        why = {
            FAILED: "failed",
            CANCELLED: "was cancelled by a user",
        }.get(status, f"ended with status {status!r}")
        return self._error(f"deployment {uuid} of application {app}{joined} {why}; {tail}")

    def _logs_hidden(self, app: str, deadline: float) -> bool:
        """Whether a missing `logs` field proves the token may not read logs: Coolify leaves
        it out of every deployment for such a token, so one answer that carried a log (to
        this client, or in the application's deployment list) proves the opposite."""
        if self._saw_logs:
            return False
        try:
            rows = self.deployments_of(app, deadline=deadline)
        except CoolifyError as exc:
            return "HTTP 403" in str(exc)
        if any("logs" in row for row in rows):
            self._saw_logs = True
            return False
        return bool(rows)


# -- helpers -------------------------------------------------------------------------------


def _parse_base_url(raw: str) -> str:
    text = raw.strip()
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        url = None
    problem = None
    if not text:
        problem = "it is empty; a deploy needs the explicit address of the Coolify server"
    elif url is None or url.scheme not in ("http", "https") or not url.host:
        problem = "it is not an http:// or https:// URL with a host"
    elif url.userinfo:
        problem = "it has credentials in it; the API token is passed as a secret"
    elif url.query or url.fragment:
        problem = "it has a query or fragment"
    elif url.path.rstrip("/").endswith(("/api/v1", "/api")):
        problem = "it includes the /api/v1 path, which wormhole-ci adds itself"
    if problem is not None or url is None:
        shown = re.sub(r"//[^/@]*@", "//***@", text)[:200]
        raise CoolifyError(
            f"invalid Coolify base URL {shown!r}: {problem}; write it like "
            "http://coolify.example.internal:8000"
        )
    return str(url).rstrip("/")


def _forbidden_fix(message: str, ability: str) -> str:
    if message == "API is disabled.":
        return "enable API access in Coolify (Settings → Advanced → API Access)"
    if "not allowed to access the API" in message:
        return "add this machine's IP address to Coolify's allowed API IPs (Settings → Advanced)"
    if "permission" in message.lower():
        return (
            f"the token lacks the `{ability}` ability (or its user's team role may not use "
            f"it): create a token with `{ability}` (a release needs read, write and deploy)"
        )
    return (
        "the API is disabled, this machine's IP is not allowed, or the token lacks the "
        f"`{ability}` ability; check Settings → Advanced and the token's abilities"
    )


def _check_uuid(value: str, what: str) -> None:
    if not _UUID_RE.match(value):
        raise CoolifyError(
            f"invalid Coolify {what} {value!r:.80}: copy it from the resource's page in Coolify "
            "(letters and digits, as in the URL)"
        )


def _app_missing(uuid: str) -> str:
    return (
        f"application {uuid} (from wormhole-ci.toml) does not exist there, or belongs to "
        "another team than the token's; check the uuid on the application's page in Coolify"
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _json(response: httpx.Response) -> object:
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def _message(response: httpx.Response) -> str:
    """Coolify's `message` (plus validation `errors`), else the start of the body."""
    body = as_dict(_json(response))
    if body is not None:
        parts = [_text(body.get("message"))]
        for field, problems in (as_dict(body.get("errors")) or {}).items():
            texts = [str(p) for p in as_list(problems) or [problems]]
            parts.append(f"{field}: {' '.join(texts)}")
        return "; ".join(p for p in parts if p)[:500]
    text = " ".join(response.text.split())
    if text.lower().startswith(("<!doctype", "<html")):
        return "an HTML page, not Coolify's API"
    return text[:200]


def _summary(response: httpx.Response) -> str:
    message = _message(response)
    return f" ({message})" if message else ""


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None  # absent, or an HTTP date: back off instead


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _log_text(value: object) -> str:
    """Coolify stores a deployment log as a JSON list of entries; the visible outputs, joined."""
    if not isinstance(value, str):
        entries = as_list(value)
        if entries is None:
            return "" if value is None else str(value)
    else:
        try:
            entries = as_list(json.loads(value))
        except ValueError:
            entries = None
        if entries is None:
            return value
    lines: list[str] = []
    for entry in entries:
        fields = as_dict(entry)
        if fields is None:
            lines.append(str(entry))
        elif not fields.get("hidden"):
            lines.append(_text(fields.get("output")).rstrip("\n"))
    return "\n".join(lines)


def _tail(logs: str) -> str:
    lines = logs.rstrip("\n").splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines)[-_LOG_TAIL_CHARS:]
