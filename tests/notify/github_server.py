"""A GitHub REST contract server (deployments, deployment statuses, issue comments) and a
webhook sink (Slack incoming webhook, generic JSON), on 127.0.0.1 only.

Written from GitHub's REST documentation (API version 2022-11-28):
- `POST /repos/{owner}/{repo}/deployments` → 201 `{"id", "ref", "environment", ...}`; 422
  without `ref`. `GET` same path (`sha`, `ref`, `task`, `environment` filters; `per_page`
  default 30, at most 100; `page`) → 200 the page, newest first.
  docs.github.com/en/rest/deployments/deployments#list-deployments
- `POST /repos/{owner}/{repo}/deployments/{id}/statuses` → 201 `{"id", "state", ...}`; 404
  for an unknown deployment; 422 for a state GitHub does not document.
- `GET /repos/{owner}/{repo}/issues/{n}/comments?per_page&page` → the page, ascending id;
  `POST` same path `{"body"}` → 201 the comment; `PATCH /repos/{owner}/{repo}/issues/comments/
  {id}` `{"body"}` → 200 the comment, 404 unknown; 422 "Validation Failed" for either without
  a string `body`.
- Every request needs `Authorization: Bearer <token>` (401 `{"message": "Bad credentials"}`
  otherwise) and `Accept: application/vnd.github+json`; 400 for an unknown
  `X-GitHub-Api-Version`, as GitHub answers.
- Slack (`/slack/...`): 200 text `ok`; 400 `invalid_payload` without `text`. Generic
  (`/hook/...`): 200 for any JSON object.

Knobs: `fail(method, path_prefix, *statuses)` serves those statuses first (e.g. 502, 503) for
matching requests; `requests` logs every request (method, path, query, headers, body).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loopback import serve_loopback

STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}


@dataclass
class Logged:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class GitHubServer:
    token: str
    url: str = ""
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict[int, dict[str, Any]])
    statuses: dict[int, list[dict[str, Any]]] = field(
        default_factory=dict[int, list[dict[str, Any]]]
    )
    comments: dict[int, list[dict[str, Any]]] = field(
        default_factory=dict[int, list[dict[str, Any]]]
    )
    requests: list[Logged] = field(default_factory=list[Logged])
    webhooks: list[Logged] = field(default_factory=list[Logged])
    faults: list[tuple[str, str, int]] = field(default_factory=list[tuple[str, str, int]])
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, method: str, prefix: str, *statuses: int) -> None:
        self.faults.extend((method, prefix, s) for s in statuses)

    def add_comment(self, issue: int, body: str) -> int:
        with self.lock:
            self.next_id += 1
            self.comments.setdefault(issue, []).append({"id": self.next_id, "body": body})
            return self.next_id

    def bodies(self, issue: int) -> list[str]:
        return [c["body"] for c in self.comments.get(issue, [])]

    def api(self) -> list[Logged]:
        """The requests to the GitHub API (not the webhooks)."""
        return [r for r in self.requests if r.path.startswith("/repos/")]

    def _fault(self, method: str, path: str) -> int | None:
        with self.lock:
            for i, (m, prefix, status) in enumerate(self.faults):
                if m == method and path.startswith(prefix):
                    del self.faults[i]
                    return status
        return None


class _Handler(BaseHTTPRequestHandler):
    state: GitHubServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, data: object, text: bool = False) -> None:
        raw = str(data).encode() if text else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if text else "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        logged = Logged(
            self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body
        )
        s = self.state
        with s.lock:
            s.requests.append(logged)
        fault = s._fault(self.command, parts.path)
        if fault is not None:
            self._answer(fault, {"message": "Server Error"})
            return
        if parts.path.startswith(("/slack/", "/hook/")):
            self._webhook(parts.path, logged)
            return
        if self.headers.get("Authorization") != f"Bearer {s.token}":
            self._answer(401, {"message": "Bad credentials"})
            return
        if self.headers.get("X-GitHub-Api-Version", "2022-11-28") != "2022-11-28":
            self._answer(400, {"message": "Unsupported API version"})
            return
        self._api(parts.path, query, body)

    def _webhook(self, path: str, logged: Logged) -> None:
        with self.state.lock:
            self.state.webhooks.append(logged)
        body = logged.body
        if path.startswith("/slack/"):
            if not isinstance(body, dict) or not body.get("text"):
                self._answer(400, "invalid_payload", text=True)
            else:
                self._answer(200, "ok", text=True)
            return
        self._answer(200 if isinstance(body, dict) else 400, {"received": True})

    def _api(self, path: str, query: dict[str, str], body: Any) -> None:
        s = self.state
        m = re.fullmatch(r"/repos/[^/]+/[^/]+(/.*)", path)
        rest = m.group(1) if m else ""
        if rest == "/deployments" and self.command == "GET":
            found = [
                d
                for d in sorted(s.deployments.values(), key=lambda d: -d["id"])
                if all(
                    d.get(k) == query[k]
                    for k in ("sha", "ref", "task", "environment")
                    if k in query
                )
            ]
            per_page = min(int(query.get("per_page", "30")), 100)
            page = int(query.get("page", "1"))
            self._answer(200, found[(page - 1) * per_page : page * per_page])
            return
        if rest == "/deployments" and self.command == "POST":
            if not isinstance(body, dict) or not body.get("ref"):
                self._answer(422, {"message": "Invalid request.", "errors": ["ref"]})
                return
            with s.lock:
                s.next_id += 1
                deployment = {"id": s.next_id, **body}
                s.deployments[s.next_id] = deployment
            self._answer(201, deployment)
            return
        if (m := re.fullmatch(r"/deployments/(\d+)/statuses", rest)) and self.command == "POST":
            ident = int(m.group(1))
            if ident not in s.deployments:
                self._answer(404, {"message": "Not Found"})
                return
            if not isinstance(body, dict) or body.get("state") not in STATES:
                self._answer(422, {"message": "Validation Failed"})
                return
            with s.lock:
                s.next_id += 1
                status = {"id": s.next_id, **body}
                s.statuses.setdefault(ident, []).append(status)
            self._answer(201, status)
            return
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            issue = int(m.group(1))
            if self.command == "GET":
                per_page = min(int(query.get("per_page", "30")), 100)
                page = int(query.get("page", "1"))
                items = s.comments.get(issue, [])
                self._answer(200, items[(page - 1) * per_page : page * per_page])
                return
            if self.command == "POST":
                if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                    self._answer(422, {"message": "Validation Failed"})
                    return
                self._answer(201, {"id": s.add_comment(issue, body["body"]), "body": body["body"]})
                return
        if (m := re.fullmatch(r"/issues/comments/(\d+)", rest)) and self.command == "PATCH":
            ident = int(m.group(1))
            if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                self._answer(422, {"message": "Validation Failed"})
                return
            for comments in s.comments.values():
                for comment in comments:
                    if comment["id"] == ident:
                        comment["body"] = body["body"]
                        self._answer(200, comment)
                        return
        self._answer(404, {"message": "Not Found"})

    do_GET = do_POST = do_PATCH = _handle


@contextmanager
def run_github(token: str) -> Generator[GitHubServer]:
    """The server on 127.0.0.1:<free port>, stopped on exit."""
    state = GitHubServer(token)
    with serve_loopback(type("Handler", (_Handler,), {"state": state})) as url:
        state.url = url
        yield state
