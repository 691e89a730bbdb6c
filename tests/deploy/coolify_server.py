"""A Coolify v4 API contract server for the tests: DESIGN.md §5 as it really behaves, on loopback.

`run_coolify()` starts it on 127.0.0.1:<free port> (a ThreadingHTTPServer, never another
address) and yields a `CoolifyServer`; everything below is that object's state, changed
between requests by the test.

Endpoints (all JSON, `Authorization: Bearer <token>`):

- `POST /api/v1/deploy` with `uuid=` or `tag=` (comma lists) in the query or a JSON body,
  `force`. Answers `{"deployments": [{message, resource_uuid, deployment_uuid}]}` by uuid and
  `{"message": [...], "details": [{resource_uuid, deployment_uuid}]}` by tag; 400 for both or
  neither; 404 "No resources found." / "No resources found with this tag."; unknown uuids
  are silently left out when others exist, as Coolify does. `force` is read the PHP way:
  any non-empty value but "0" is true, so `force=false` forces. Any other method → 405.
- `GET /api/v1/deployments/{uuid}`: the deployment, `logs` only for a `read:sensitive`
  token; 404 "Deployment not found.". Each poll shows the next status of its script.
- `GET /api/v1/deployments/applications/{uuid}?skip&take`: `{"count", "deployments"}`,
  newest first, statuses not advanced.
- `GET /api/v1/applications/{uuid}`; `PATCH /api/v1/applications/{uuid}` (only
  `docker_registry_image_tag`/`_name`, `name`, `description`; others → 422).
- `POST /api/v1/applications/{uuid}/rollback` (optional `{"commit": tag}`, default: the
  previously finished tag) → `{"message", "deployment_uuid"}`; 404 "Not found." when
  `rollback_enabled` is False (a Coolify before 4.3). It does not change the application's
  configured tag, only what runs. A body with any field but `commit` → 422, as Coolify
  validates it.
- `GET /api/v1/applications/{uuid}/rollback-images` → `{"current": tag|null, "images":
  [{"tag", "created_at", "is_current"}]}`, newest first: the images still on the host
  (`FakeApp.images`; every finished deployment's tag is added). 404 when `rollback_enabled`
  is False.
- Previews (Coolify's DeployController `deploy`/`by_uuids`/`upsertDockerImagePreview` and
  ApplicationsController, read at coollabsio/coolify 379abb2): `POST /api/v1/deploy` also
  takes `pr` (alias `pull_request_id`, which wins) and `docker_tag`: 400 "You can only use
  tag or pr, not both.", "docker_tag requires pull_request_id.", "You can only use tag or
  docker_tag, not both."; for a `dockerimage` application the deploy creates the PR's
  preview (or updates its tag); without one and without `docker_tag` (or for another build
  pack without a preview) the entry is "Pull request N not found for this resource." with no
  deployment_uuid; `docker_tag` on another build pack: "docker_tag can only be used with
  Docker Image applications.". `DELETE /api/v1/applications/{uuid}/previews/{pr}` (write):
  200 "Preview deletion request queued.", 404 "Application not found." / "Preview not
  found.", 422 "Invalid pull_request_id.".
- Environment variables: `GET /api/v1/applications/{uuid}/envs` (read; normal then preview
  variables, `value` only for a `read:sensitive` token), `POST` (write; 201 `{"uuid"}`, 409
  "Environment variable already exists. Use PATCH request to update it." for the same key and
  `is_preview`), `PATCH` (write; by key and `is_preview`: 201 with the variable, 404
  "Environment variable not found."), both 422 "Validation failed." for a field outside key,
  value, is_preview, is_literal, is_multiline, is_shown_once, is_runtime, is_buildtime,
  comment or a non-boolean flag; `DELETE …/envs/{env_uuid}` (write; 200 "Environment
  variable deleted.", 404 "Environment variable not found.").
- Anything else → 404 `{"message": "Not found."}`.

Knobs (attributes and methods of `CoolifyServer`):

- `add_app(uuid, name, tags=(), image_tag=...)`, `declare_tag(name)` (a tag with no
  resources: "No resources found for tag X."), `apps[uuid]` (`FakeApp`: `image_tag`,
  `running`, `history`).
- `tokens`: token → abilities (`read`, `write`, `deploy`, `read:sensitive`, `root`). A
  missing/unknown token → 401 "Unauthenticated."; a missing ability → 403
  "Missing required permissions: <ability>". `api_enabled=False` → 403 "API is disabled.";
  `ip_allowed=False` → 403 "You are not allowed to access the API.".
- `script(app_uuid, *statuses, logs=(), empty_log=False)`: the status sequence of that app's
  next deployment (one script per deployment, FIFO; default `default_script` = queued →
  in_progress → finished). The last status sticks. `logs` are lines added to its log when it
  ends. `empty_log=True`: the deployment never writes a log line (a deployment cancelled
  before it started): a `read:sensitive` token reads `"logs": null` (the column is null);
  other tokens get no `logs` field, as always.
- Faults of issue 13: `hang(*app_uuids)` (their next deployments stay `in_progress`
  forever: an overall-deadline hang across applications), `refuse_deploys()` (every valid
  `POST /api/v1/deploy` answers 404 "No resources found.", e.g. after the image tags were
  PATCHed), `apps[uuid].images` (the rollback-images list, for an application without a
  previous tag).
- Duplicate skip: deploying an app whose current tag already has a queued/in-progress
  deployment (without force) answers "Deployment already queued for this commit." with a
  fresh deployment_uuid that is never saved (polling it → 404).
- `queue_limit`: with that many queued/in-progress deployments, deploy answers 429 with
  `Retry-After: 60`, like Coolify's full deployment queue.
- `inject(method, path, *Canned)`: canned answers served first, in order, for that exact
  method and path (no query), e.g. `Canned.too_many(1)`, `Canned.unavailable()`,
  `Canned(0, drop=True)` (connection closed without an answer).
- `requests`: every request as `Logged(method, path, query, body, auth)` (`auth`: an
  Authorization header was sent; its value is never recorded).
- `on_preview(app_uuid, pr, tag)`: like `on_deploy`, for a PR's preview deployment (which
  changes `apps[uuid].previews[pr].running`, never the application's own tag).
  `on_preview_deleted(app_uuid, pr)`: called when a preview is deleted.
- `on_deploy(app_uuid, tag)`: called when a deployment first shows `finished`, before that
  answer is sent (the release tests start the real image of that tag there). If it
  raises, the deployment shows `failed` instead, with the exception in its log.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.loopback import serve_loopback

ALL_ABILITIES = frozenset({"read", "write", "deploy", "read:sensitive"})
SKIPPED = "Deployment already queued for this commit."
ACTIVE = ("queued", "in_progress")
DEFAULT_SCRIPT = ("queued", "in_progress", "finished")
_PATCHABLE = {"docker_registry_image_tag", "docker_registry_image_name", "name", "description"}
_ALPHABET = string.ascii_lowercase + string.digits


def new_uuid() -> str:
    """A cuid2-looking id: 24 lowercase letters and digits."""
    return secrets.choice(string.ascii_lowercase) + "".join(
        secrets.choice(_ALPHABET) for _ in range(23)
    )


@dataclass(frozen=True)
class Canned:
    """An injected answer: JSON `body` (or raw `text`), or a dropped connection."""

    status: int
    body: object = None
    headers: Mapping[str, str] = field(default_factory=dict[str, str])
    text: str | None = None
    drop: bool = False

    @staticmethod
    def too_many(retry_after: int | None = 60) -> Canned:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return Canned(429, {"message": "Deployment queue is full."}, headers)

    @staticmethod
    def unavailable(status: int = 503) -> Canned:
        return Canned(status, text="<html><body><h1>503 Service Unavailable</h1></body></html>")


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    query: dict[str, str]
    body: object
    auth: bool


_ENV_FIELDS = {
    "key", "value", "is_preview", "is_literal", "is_multiline", "is_shown_once", "is_runtime",
    "is_buildtime", "comment",
}  # fmt: skip
_ENV_FLAGS = _ENV_FIELDS - {"key", "value", "comment"}
_PHP_BOOLEANS = (True, False, 0, 1, "0", "1", "true", "false")  # Laravel's `boolean` rule


@dataclass
class FakePreview:
    pr: int
    tag: str | None
    """The preview's docker_registry_image_tag."""
    running: str | None = None


@dataclass
class FakeEnv:
    uuid: str
    key: str
    value: str | None
    is_preview: bool
    flags: dict[str, bool] = field(default_factory=dict[str, bool])


@dataclass
class FakeApp:
    id: int
    uuid: str
    name: str
    tags: list[str]
    image: str
    image_tag: str
    """The configured docker_registry_image_tag (what the next deploy runs); "" for none
    (null in the answers)."""
    running: str | None = None
    """The tag the last finished deployment runs."""
    history: list[str] = field(default_factory=list[str])
    """Every finished deployment's tag, oldest first."""
    images: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    """(tag, created_at) of the images still on the host, what rollback-images lists."""
    build_pack: str = "dockerimage"
    previews: dict[int, FakePreview] = field(default_factory=dict[int, FakePreview])
    envs: list[FakeEnv] = field(default_factory=list[FakeEnv])


@dataclass
class FakeDeployment:
    id: int
    uuid: str
    app: FakeApp
    tag: str
    script: list[str]
    end_logs: list[str]
    force: bool = False
    rollback: bool = False
    pr: int = 0
    position: int = 0
    """How many polls have shown a status."""
    overridden: str | None = None
    """A status forced by the server (a failed on_deploy hook)."""
    notified: bool = False
    empty_log: bool = False
    """No log line is ever written: its `logs` is null (see `script`)."""
    log: list[dict[str, object]] = field(default_factory=list[dict[str, object]])
    created_at: str = ""

    @property
    def status(self) -> str:
        if self.overridden is not None:
            return self.overridden
        return self.script[min(max(self.position - 1, 0), len(self.script) - 1)]


class CoolifyServer:
    """State and knobs of one contract server; see the module docstring."""

    def __init__(self, tokens: Mapping[str, Iterable[str]]) -> None:
        self.url = ""
        self.tokens: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in tokens.items()}
        self.apps: dict[str, FakeApp] = {}
        self.deployments: dict[str, FakeDeployment] = {}
        self.declared_tags: set[str] = set()
        self.default_script: tuple[str, ...] = DEFAULT_SCRIPT
        self.scripts: dict[str, deque[tuple[list[str], list[str], bool]]] = {}
        self.faults: dict[tuple[str, str], deque[Canned]] = {}
        self.requests: list[Logged] = []
        self.rollback_enabled = True
        self.api_enabled = True
        self.ip_allowed = True
        self.queue_limit: int | None = None
        self.deploys_refused = False
        self.on_deploy: Callable[[str, str], None] | None = None
        self.on_preview: Callable[[str, int, str], None] | None = None
        self.on_preview_deleted: Callable[[str, int], None] | None = None
        self.lock = threading.RLock()
        self._ids = 0

    # -- knobs ---------------------------------------------------------------------------

    def add_app(
        self, uuid: str, name: str, *, tags: Sequence[str] = (), image_tag: str = "latest"
    ) -> FakeApp:
        with self.lock:
            self._ids += 1
            app = FakeApp(self._ids, uuid, name, list(tags), f"wormhole/{name}", image_tag)
            self.apps[uuid] = app
            return app

    def declare_tag(self, name: str) -> None:
        with self.lock:
            self.declared_tags.add(name)

    def script(
        self, app_uuid: str, *statuses: str, logs: Sequence[str] = (), empty_log: bool = False
    ) -> None:
        with self.lock:
            planned = (list(statuses), list(logs), empty_log)
            self.scripts.setdefault(app_uuid, deque()).append(planned)

    def hang(self, *app_uuids: str) -> None:
        """The next deployment of each application stays in_progress forever."""
        for uuid in app_uuids:
            self.script(uuid, "queued", "in_progress")

    def refuse_deploys(self) -> None:
        """Every POST /api/v1/deploy answers 404 "No resources found." (as Coolify does when
        it finds none of the resources, e.g. the applications were moved to another team)."""
        with self.lock:
            self.deploys_refused = True

    def inject(self, method: str, path: str, *responses: Canned) -> None:
        with self.lock:
            self.faults.setdefault((method.upper(), path), deque()).extend(responses)

    def calls(self, method: str | None = None, path: str | None = None) -> list[Logged]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    def queue(self, app_uuid: str, *, tag: str | None = None, statuses: Sequence[str] = ()) -> str:
        """A deployment queued outside the client (a push, the UI); its uuid."""
        with self.lock:
            app = self.apps[app_uuid]
            return self._queue(app, tag or app.image_tag, force=False, script=statuses).uuid

    # -- behaviour -----------------------------------------------------------------------

    def _queue(
        self,
        app: FakeApp,
        tag: str,
        *,
        force: bool,
        rollback: bool = False,
        script: Sequence[str] = (),
        pr: int = 0,
    ) -> FakeDeployment:
        end_logs: list[str] = []
        empty_log = False
        if not script:
            pending = self.scripts.get(app.uuid)
            if pending:
                planned, end_logs, empty_log = pending.popleft()
                script = planned
        self._ids += 1
        deployment = FakeDeployment(
            id=self._ids,
            uuid=new_uuid(),
            app=app,
            tag=tag,
            script=list(script or self.default_script),
            end_logs=end_logs,
            force=force,
            rollback=rollback,
            pr=pr,
            empty_log=empty_log,
            created_at=_now(),
        )
        if not empty_log:
            deployment.log.append(_entry(f"Deployment {deployment.uuid} queued."))
        self.deployments[deployment.uuid] = deployment
        return deployment

    def _active(self) -> list[FakeDeployment]:
        return [d for d in self.deployments.values() if d.status in ACTIVE]

    def _poll(self, deployment: FakeDeployment) -> bool:
        """Advance one status; True when it just reached `finished` (the hook is due)."""
        before = deployment.status if deployment.position else None
        deployment.position += 1
        status = deployment.status
        if status == before:
            return False
        app = deployment.app
        if deployment.empty_log:
            return status == "finished" and not deployment.notified
        if status == "in_progress":
            deployment.log.append(_entry(f"docker pull {app.image}:{deployment.tag}", hidden=True))
            deployment.log.append(_entry(f"Starting deployment of {app.image}:{deployment.tag}."))
        elif status == "finished":
            deployment.log.extend(_entry(line) for line in deployment.end_logs)
            return not deployment.notified
        elif status == "failed":
            lines = deployment.end_logs or ["Error: deployment failed."]
            deployment.log.extend(_entry(line, kind="stderr") for line in lines)
        elif status == "cancelled-by-user":
            deployment.log.extend(_entry(line) for line in deployment.end_logs)
            deployment.log.append(_entry("Deployment cancelled by user.", kind="stderr"))
        return False

    def _finished(self, deployment: FakeDeployment) -> None:
        app = deployment.app
        deployment.notified = True
        if deployment.pr:
            preview = app.previews.get(deployment.pr)
            if preview is not None:
                preview.running = deployment.tag
            deployment.log.append(_entry(f"{app.image}:{deployment.tag} is running (preview)."))
            return
        app.running = deployment.tag
        app.history.append(deployment.tag)
        app.images = [i for i in app.images if i[0] != deployment.tag] + [(deployment.tag, _now())]
        deployment.log.append(_entry(f"{app.image}:{deployment.tag} is running."))

    def _row(self, deployment: FakeDeployment, *, sensitive: bool) -> dict[str, object]:
        row: dict[str, object] = {
            "id": deployment.id,
            "deployment_uuid": deployment.uuid,
            "application_id": deployment.app.id,
            "application_name": deployment.app.name,
            "server_id": 0,
            "server_name": "localhost",
            "commit": deployment.tag,
            "status": deployment.status,
            "force_rebuild": deployment.force,
            "rollback": deployment.rollback,
            "is_api": True,
            "pull_request_id": deployment.pr,
            "created_at": deployment.created_at,
            "updated_at": _now(),
        }
        if sensitive:
            # Coolify keeps the log as a JSON-encoded list of entries in a text column.
            row["logs"] = None if deployment.empty_log else json.dumps(deployment.log)
        return row


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _entry(output: str, *, hidden: bool = False, kind: str = "stdout") -> dict[str, object]:
    return {
        "command": None,
        "output": output,
        "type": kind,
        "timestamp": _now(),
        "hidden": hidden,
        "batch": 1,
    }


def _php_true(value: object) -> bool:
    """PHP's truthiness of a request value: "false" is true, "0" and "" are false."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value) not in ("", "0")


# -- HTTP ------------------------------------------------------------------------------------


class _Answer(Exception):
    def __init__(self, status: int, body: object, headers: Mapping[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


# (status, JSON body, headers, a hook to run before answering), and a route's handler.
Result = tuple[int, object, dict[str, str], Callable[[], None] | None]
Route = Callable[[CoolifyServer, list[str], dict[str, str], object, bool], Result]


def _handle(
    server: CoolifyServer,
    method: str,
    path: str,
    query: dict[str, str],
    body: object,
    token: str | None,
) -> Result:
    """Route, authenticate and answer one request (errors are raised as _Answer)."""
    parts = path.rstrip("/").split("/")
    if parts[:3] != ["", "api", "v1"]:
        raise _Answer(404, {"message": "Not found."})
    rest = parts[3:]
    route, ability = _route(server, method, rest)
    if not server.api_enabled:
        raise _Answer(403, {"success": True, "message": "API is disabled."})
    if not server.ip_allowed:
        raise _Answer(403, {"success": True, "message": "You are not allowed to access the API."})
    abilities = server.tokens.get(token or "")
    if abilities is None:
        raise _Answer(401, {"message": "Unauthenticated."})
    if "root" not in abilities and ability not in abilities:
        raise _Answer(403, {"message": f"Missing required permissions: {ability}"})
    sensitive = "root" in abilities or "read:sensitive" in abilities
    return route(server, rest, query, body, sensitive)


def _route(server: CoolifyServer, method: str, rest: list[str]) -> tuple[Route, str]:
    """The handler and the ability it needs; 404/405 are decided before authentication."""
    if rest == ["deploy"]:
        # Since v4.2 the route is POST-only: Laravel answers other methods before auth.
        if method != "POST":
            raise _Answer(
                405,
                {
                    "message": f"The {method} method is not supported for route api/v1/deploy. "
                    "Supported methods: POST."
                },
            )
        return _deploy, "deploy"
    if len(rest) == 2 and rest[0] == "deployments" and method == "GET":
        return _get_deployment, "read"
    if len(rest) == 3 and rest[:2] == ["deployments", "applications"] and method == "GET":
        return _app_deployments, "read"
    if len(rest) == 2 and rest[0] == "applications":
        if method == "GET":
            return _get_app, "read"
        if method == "PATCH":
            return _patch_app, "write"
        raise _Answer(405, {"message": f"The {method} method is not supported for this route."})
    if len(rest) == 3 and rest[0] == "applications" and rest[2] == "envs":
        if method == "GET":
            return _list_envs, "read"
        if method == "POST":
            return _create_env, "write"
        if method == "PATCH":
            return _update_env, "write"
        raise _Answer(405, {"message": f"The {method} method is not supported for this route."})
    if len(rest) == 4 and rest[0] == "applications" and rest[2] == "envs" and rest[3] != "bulk":
        if method != "DELETE":
            raise _Answer(405, {"message": f"The {method} method is not supported for this route."})
        return _delete_env, "write"
    if len(rest) == 4 and rest[0] == "applications" and rest[2] == "previews":
        if method != "DELETE":
            raise _Answer(405, {"message": f"The {method} method is not supported for this route."})
        return _delete_preview, "write"
    if len(rest) == 3 and rest[0] == "applications" and rest[2] == "rollback":
        if not server.rollback_enabled:
            raise _Answer(404, {"message": "Not found."})
        if method != "POST":
            raise _Answer(405, {"message": f"The {method} method is not supported for this route."})
        return _rollback, "deploy"
    if len(rest) == 3 and rest[0] == "applications" and rest[2] == "rollback-images":
        if not server.rollback_enabled:
            raise _Answer(404, {"message": "Not found."})
        if method != "GET":
            raise _Answer(405, {"message": f"The {method} method is not supported for this route."})
        return _rollback_images, "read"
    raise _Answer(404, {"message": "Not found."})


def _deploy(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    # Laravel's input(): the JSON body's values over the query's.
    fields: dict[str, object] = dict(query)
    if isinstance(body, dict):
        fields.update({str(k): v for k, v in body.items()})
    uuids = str(fields.get("uuid") or "")
    tags = str(fields.get("tag") or "")
    force = _php_true(fields.get("force"))
    raw_pr = fields.get("pull_request_id", fields.get("pr"))
    try:  # PHP's max((int) $value, 0): a non-number is 0
        pr = max(int(str(raw_pr)), 0) if raw_pr else 0
    except ValueError:
        pr = 0
    docker_tag = str(fields.get("docker_tag") or "").strip() or None
    if uuids and tags:
        raise _Answer(400, {"message": "You can only use uuid or tag, not both."})
    if tags and pr:
        raise _Answer(400, {"message": "You can only use tag or pr, not both."})
    if docker_tag and pr == 0:
        raise _Answer(400, {"message": "docker_tag requires pull_request_id."})
    if docker_tag and tags:
        raise _Answer(400, {"message": "You can only use tag or docker_tag, not both."})
    if not uuids and not tags:
        raise _Answer(400, {"message": "You must provide uuid or tag."})
    with server.lock:
        if server.deploys_refused:
            raise _Answer(404, {"message": "No resources found."})
        if tags:
            return _deploy_tags(server, [t for t in tags.split(",") if t], force)
        wanted = [u for u in uuids.split(",") if u]
        if not wanted:
            raise _Answer(400, {"message": "No UUIDs provided."})
        deployments: list[dict[str, object]] = []
        for uuid in wanted:
            app = server.apps.get(uuid)
            if app is None:
                continue  # Coolify skips resources it cannot find
            if pr:
                preview = _upsert_preview(app, pr, docker_tag)
                if preview is None:
                    deployments.append(
                        {
                            "message": f"Pull request {pr} not found for this resource.",
                            "resource_uuid": uuid,
                        }
                    )
                    continue
                if docker_tag is not None and app.build_pack != "dockerimage":
                    deployments.append(
                        {
                            "message": "docker_tag can only be used with Docker Image "
                            "applications.",
                            "resource_uuid": uuid,
                        }
                    )
                    continue
                message, deployment_uuid = _deploy_preview(server, app, preview, force)
                deployments.append(
                    {"message": message, "resource_uuid": uuid, "deployment_uuid": deployment_uuid}
                )
                continue
            message, deployment_uuid = _deploy_one(server, app, force)
            deployments.append(
                {"message": message, "resource_uuid": uuid, "deployment_uuid": deployment_uuid}
            )
        if not deployments:
            raise _Answer(404, {"message": "No resources found."})
        return 200, {"deployments": deployments}, {}, None


def _deploy_tags(server: CoolifyServer, tags: list[str], force: bool) -> Result:
    if not tags:
        raise _Answer(400, {"message": "No TAGs provided."})
    messages: list[str] = []
    details: list[dict[str, str]] = []
    for tag in tags:
        apps = [a for a in server.apps.values() if tag in a.tags]
        if not apps:
            if tag in server.declared_tags:
                messages.append(f"No resources found for tag {tag}.")
            continue  # an unknown tag is silently skipped, as in Coolify
        for app in apps:
            message, deployment_uuid = _deploy_one(server, app, force)
            details.append({"resource_uuid": app.uuid, "deployment_uuid": deployment_uuid})
            messages.append(message)
    if not messages:
        raise _Answer(404, {"message": "No resources found with this tag."})
    payload: dict[str, object] = {"message": messages}
    if details:
        payload["details"] = details
    return 200, payload, {}, None


def _deploy_one(server: CoolifyServer, app: FakeApp, force: bool) -> tuple[str, str]:
    if server.queue_limit is not None and len(server._active()) >= server.queue_limit:
        raise _Answer(
            429,
            {"message": "Deployment queue is full. Please try again later."},
            {"Retry-After": "60"},
        )
    if not force:
        for existing in server.deployments.values():
            if existing.app is app and existing.tag == app.image_tag and existing.status in ACTIVE:
                # The trap: a fresh uuid that is never saved.
                return SKIPPED, new_uuid()
    deployment = server._queue(app, app.image_tag, force=force)
    return f"Application {app.name} deployment queued.", deployment.uuid


def _upsert_preview(app: FakeApp, pr: int, docker_tag: str | None) -> FakePreview | None:
    preview = app.previews.get(pr)
    if app.build_pack != "dockerimage":
        return preview  # only a Docker-image application gets its preview made by a deploy
    if preview is None:
        if docker_tag is None:
            return None
        preview = app.previews[pr] = FakePreview(pr, docker_tag)
    elif docker_tag is not None:
        preview.tag = docker_tag
    return preview


def _deploy_preview(
    server: CoolifyServer, app: FakeApp, preview: FakePreview, force: bool
) -> tuple[str, str]:
    if server.queue_limit is not None and len(server._active()) >= server.queue_limit:
        raise _Answer(
            429,
            {"message": "Deployment queue is full. Please try again later."},
            {"Retry-After": "60"},
        )
    tag = preview.tag or app.image_tag
    if not force:
        for existing in server.deployments.values():
            if (
                existing.app is app
                and existing.pr == preview.pr
                and existing.tag == tag
                and existing.status in ACTIVE
            ):
                return SKIPPED, new_uuid()
    deployment = server._queue(app, tag, force=force, pr=preview.pr)
    return f"Application {app.name} deployment queued.", deployment.uuid


def _delete_preview(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    with server.lock:
        app = server.apps.get(rest[1])
        if app is None:
            raise _Answer(404, {"message": "Application not found."})
        raw = rest[3]
        if not raw.isdigit() or int(raw) <= 0:
            raise _Answer(422, {"message": "Invalid pull_request_id."})
        pr = int(raw)
        if app.previews.pop(pr, None) is None:
            raise _Answer(404, {"message": "Preview not found."})
        # Coolify cancels the preview's active deployments as part of the cleanup.
        for deployment in server.deployments.values():
            if deployment.app is app and deployment.pr == pr and deployment.status in ACTIVE:
                deployment.overridden = "cancelled-by-user"
        hook = server.on_preview_deleted
    if hook is not None:
        hook(app.uuid, pr)
    return 200, {"message": "Preview deletion request queued."}, {}, None


def _env_json(env: FakeEnv, *, sensitive: bool) -> dict[str, object]:
    row: dict[str, object] = {"uuid": env.uuid, "key": env.key, "is_preview": env.is_preview}
    row.update(env.flags)
    if sensitive:  # removeSensitiveData: `value` is visible to read:sensitive tokens only
        row["value"] = env.value
    return row


def _list_envs(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    with server.lock:
        app = server.apps.get(rest[1])
        if app is None:
            raise _Answer(404, {"message": "Application not found"})
        ordered = [e for e in app.envs if not e.is_preview] + [e for e in app.envs if e.is_preview]
        return 200, [_env_json(e, sensitive=sensitive) for e in ordered], {}, None


def _create_env(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    return _write_env(server, rest, body, sensitive, create=True)


def _update_env(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    return _write_env(server, rest, body, sensitive, create=False)


def _write_env(
    server: CoolifyServer, rest: list[str], body: object, sensitive: bool, *, create: bool
) -> Result:
    with server.lock:
        app = server.apps.get(rest[1])
        if app is None:
            raise _Answer(404, {"message": "Application not found"})
        fields = {str(k): v for k, v in body.items()} if isinstance(body, dict) else {}
        errors: dict[str, list[str]] = {}
        key = fields.get("key")
        if not isinstance(key, str) or not key.strip():
            errors["key"] = ["The key field is required."]
        value = fields.get("value")
        if value is not None and not isinstance(value, str):
            errors["value"] = ["The value field must be a string."]
        for flag in _ENV_FLAGS & fields.keys():
            if fields[flag] not in _PHP_BOOLEANS:
                errors[flag] = [f"The {flag} field must be true or false."]
        for extra in sorted(fields.keys() - _ENV_FIELDS):
            errors.setdefault(extra, []).append("This field is not allowed.")
        if errors:
            raise _Answer(422, {"message": "Validation failed.", "errors": errors})
        assert isinstance(key, str)
        key = key.strip().replace(" ", "_")
        is_preview = _php_true(fields.get("is_preview"))
        found = next((e for e in app.envs if e.key == key and e.is_preview == is_preview), None)
        flags = {f: _php_true(fields[f]) for f in _ENV_FLAGS - {"is_preview"} if f in fields}
        text = value if isinstance(value, str) else None
        if create:
            if found is not None:
                raise _Answer(
                    409,
                    {
                        "message": "Environment variable already exists. Use PATCH request to "
                        "update it."
                    },
                )
            flags = {"is_runtime": True, "is_buildtime": True, **flags}
            created = FakeEnv(new_uuid(), key, text, is_preview, flags)
            app.envs.append(created)
            return 201, {"uuid": created.uuid}, {}, None
        if found is None:
            raise _Answer(404, {"message": "Environment variable not found."})
        found.value = text
        found.flags.update(flags)
        return 201, _env_json(found, sensitive=sensitive), {}, None


def _delete_env(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    with server.lock:
        app = server.apps.get(rest[1])
        if app is None:
            raise _Answer(404, {"message": "Application not found."})
        found = next((e for e in app.envs if e.uuid == rest[3]), None)
        if found is None:
            raise _Answer(404, {"message": "Environment variable not found."})
        app.envs.remove(found)
        return 200, {"message": "Environment variable deleted."}, {}, None


def _get_deployment(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    with server.lock:
        deployment = server.deployments.get(rest[1])
        if deployment is None:
            raise _Answer(404, {"message": "Deployment not found."})
        due = server._poll(deployment)
        if not due:
            return 200, server._row(deployment, sensitive=sensitive), {}, None

    def finish() -> None:
        hook = server.on_deploy
        preview_hook = server.on_preview
        try:
            if deployment.pr:
                if preview_hook is not None:
                    preview_hook(deployment.app.uuid, deployment.pr, deployment.tag)
            elif hook is not None:
                hook(deployment.app.uuid, deployment.tag)
        except Exception as exc:  # the hook's failure is the deployment's failure
            with server.lock:
                deployment.overridden = "failed"
                deployment.notified = True
                deployment.log.append(_entry(f"Error: {exc}", kind="stderr"))
            return
        with server.lock:
            server._finished(deployment)

    return 200, deployment, {}, finish


def _app_deployments(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    with server.lock:
        app = server.apps.get(rest[2])
        if app is None:
            raise _Answer(404, {"message": "Application not found"})
        try:
            skip = int(query.get("skip", "0"))
            take = int(query.get("take", "10"))
        except ValueError:
            raise _Answer(422, {"message": "The skip field must be an integer."}) from None
        mine = sorted((d for d in server.deployments.values() if d.app is app), key=lambda d: -d.id)
        rows = [server._row(d, sensitive=sensitive) for d in mine[skip : skip + take]]
        return 200, {"count": len(mine), "deployments": rows}, {}, None


def _get_app(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    with server.lock:
        app = server.apps.get(rest[1])
        if app is None:
            raise _Answer(404, {"message": "Application not found."})
        return 200, _app_json(app), {}, None


def _patch_app(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    with server.lock:
        app = server.apps.get(rest[1])
        if app is None:
            raise _Answer(404, {"message": "Application not found."})
        if not isinstance(body, dict) or not body:
            raise _Answer(400, {"message": "Invalid request."})
        fields = {str(k): v for k, v in body.items()}
        errors = {k: ["This field is not allowed."] for k in fields if k not in _PATCHABLE}
        errors.update(
            {
                k: [f"The {k} field must be a string."]
                for k, v in fields.items()
                if k in _PATCHABLE and not isinstance(v, str)
            }
        )
        if errors:
            raise _Answer(422, {"message": "Validation failed.", "errors": errors})
        tag = fields.get("docker_registry_image_tag")
        if isinstance(tag, str):
            app.image_tag = tag
        image = fields.get("docker_registry_image_name")
        if isinstance(image, str):
            app.image = image
        name = fields.get("name")
        if isinstance(name, str):
            app.name = name
        return 200, {"uuid": app.uuid}, {}, None


def _rollback(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    with server.lock:
        app = server.apps.get(rest[1])
        if app is None:
            raise _Answer(404, {"message": "Application not found."})
        fields = body if isinstance(body, dict) else {}
        extra = sorted(str(k) for k in fields if k != "commit")
        if extra:
            errors = {k: ["This field is not allowed."] for k in extra}
            raise _Answer(422, {"message": "Validation failed.", "errors": errors})
        target = fields.get("commit")
        if target is None:
            previous = [t for t in app.history if t != app.running]
            if not previous:
                raise _Answer(400, {"message": "No previous deployment to roll back to."})
            target = previous[-1]
        deployment = server._queue(app, str(target), force=False, rollback=True)
        return (
            200,
            {"message": "Rollback deployment queued.", "deployment_uuid": deployment.uuid},
            {},
            None,
        )


def _rollback_images(
    server: CoolifyServer, rest: list[str], query: dict[str, str], body: object, sensitive: bool
) -> Result:
    with server.lock:
        app = server.apps.get(rest[1])
        if app is None:
            raise _Answer(404, {"message": "Application not found."})
        newest_first = sorted(app.images, key=lambda image: image[1], reverse=True)
        images = [
            {"tag": tag, "created_at": created, "is_current": tag == app.running}
            for tag, created in newest_first
        ]
        return 200, {"current": app.running, "images": images}, {}, None


def _app_json(app: FakeApp) -> dict[str, object]:
    return {
        "id": app.id,
        "uuid": app.uuid,
        "name": app.name,
        "build_pack": "dockerimage",
        "docker_registry_image_name": app.image,
        "docker_registry_image_tag": app.image_tag or None,  # "" stands for never set
        "status": "running:healthy" if app.running else "exited:unhealthy",
        "tags": [{"name": t} for t in app.tags],
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "coolify-contract"
    state: CoolifyServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        state = self.state
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: object = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        with state.lock:
            state.requests.append(Logged(self.command, split.path, query, body, auth=bool(header)))
            pending = state.faults.get((self.command, split.path))
            canned = pending.popleft() if pending else None
        if canned is not None:
            self._canned(canned)
            return
        bearer = token.strip() if scheme.lower() == "bearer" else None
        try:
            status, payload, headers, hook = _handle(
                state, self.command, split.path, query, body, bearer
            )
        except _Answer as answer:
            self._send(answer.status, answer.body, answer.headers)
            return
        if hook is not None:
            hook()
            assert isinstance(payload, FakeDeployment)
            with state.lock:
                sensitive = bearer is not None and bool(
                    state.tokens.get(bearer, frozenset()) & {"read:sensitive", "root"}
                )
                payload = state._row(payload, sensitive=sensitive)
        self._send(status, payload, headers)

    def _canned(self, canned: Canned) -> None:
        if canned.drop:
            self.close_connection = True
            return
        if canned.text is not None:
            data = canned.text.encode()
            self.send_response(canned.status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            for key, value in canned.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            return
        self._send(canned.status, canned.body if canned.body is not None else {}, canned.headers)

    def _send(self, status: int, payload: object, headers: Mapping[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return  # keep pytest's output clean


@contextmanager
def run_coolify(tokens: Mapping[str, Iterable[str]]) -> Generator[CoolifyServer]:
    """A contract server on 127.0.0.1:<free port>, stopped on exit."""
    state = CoolifyServer(tokens)
    with serve_loopback(type("Handler", (_Handler,), {"state": state})) as url:
        state.url = url
        yield state


@contextmanager
def run_coolify_apps(
    token: str, services: Iterable[str], image_tag: str
) -> Generator[CoolifyServer]:
    """`run_coolify` with one full-ability token and an application `app-<service>` per
    service, each at `image_tag`: the staging environment the deploy tests point at."""
    with run_coolify({token: ("read", "write", "deploy", "read:sensitive")}) as server:
        for service in services:
            server.add_app(f"app-{service}", f"wormhole-{service}", image_tag=image_tag)
        yield server
