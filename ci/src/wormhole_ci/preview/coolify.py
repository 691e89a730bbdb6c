"""Coolify's preview API: deploy a PR's image, set preview env vars, delete a PR's preview.

Read in coollabsio/coolify (v4, commit 379abb2 of 2026-08-22), never copied:
- routes/api.php: `POST /deploy` (ability deploy); `GET|POST|PATCH /applications/{uuid}/envs`
  and `DELETE /applications/{uuid}/envs/{env_uuid}` (read / write);
  `DELETE /applications/{uuid}/previews/{pull_request_id}` (write).
- app/Http/Controllers/Api/DeployController.php `deploy`/`by_uuids`/`upsertDockerImagePreview`:
  `pr` (alias `pull_request_id`) and `docker_tag`; 400 "You can only use tag or pr, not both."
  and "docker_tag requires pull_request_id."; for a Docker-image application the preview is
  created (or its tag updated) by the deploy itself; otherwise an unknown PR answers 200 with
  "Pull request N not found for this resource." and no deployment_uuid.
- app/Http/Controllers/Api/ApplicationsController.php `create_env` (201 `{"uuid"}`, 409 when
  the key exists, 422 for a field outside key/value/is_preview/is_literal/is_multiline/
  is_shown_once/is_runtime/is_buildtime/comment), `update_env_by_uuid` (PATCH by key +
  is_preview: 201 with the variable, 404 "Environment variable not found."), `envs` (both
  the normal and the preview variables, each with `is_preview`), `delete_env_by_uuid`,
  `delete_preview_by_pull_request_id` (200 "Preview deletion request queued.", 404
  "Preview not found.", 422 "Invalid pull_request_id.").
Coolify keeps ONE preview value per application and key, shared by every PR's preview.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from wormhole_ci.deploy.coolify import Coolify, Deployment
from wormhole_ci.jsonish import as_dict, as_list

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UUID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_DOCKER_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class EnvSet:
    """What setting a preview variable did on one application."""

    application: str
    created_uuid: str | None
    """The variable's uuid when this call created it (undo: delete it); None when it was
    updated in place."""


class PreviewCoolify(Coolify):
    """The Coolify client plus the preview endpoints (same retries, deadlines and redaction)."""

    def __enter__(self) -> PreviewCoolify:
        return self

    def deploy_preview(self, uuids: Sequence[str], *, pr: int, docker_tag: str) -> list[Deployment]:
        """Queue each application's PR preview with this image tag (POST /api/v1/deploy)."""
        _check_pr(pr)
        for uuid in uuids:
            _check(uuid)
        if not _DOCKER_TAG_RE.match(docker_tag):
            raise self._error(f"preview: invalid docker tag {docker_tag!r}")
        what = f"POST /api/v1/deploy (preview of PR {pr}: applications {', '.join(uuids)})"
        # Query parameters like `deploy`; `docker_tag` needs `pr` (Coolify answers 400 otherwise).
        params = {"uuid": ",".join(uuids), "pr": str(pr), "docker_tag": docker_tag}
        response = self._call("POST", "/api/v1/deploy", params=params, what=what)
        if response.status_code != 200:
            raise self._failure(
                response,
                what,
                missing=f"the application uuid(s) {', '.join(uuids)} do not exist on "
                f"{self.base_url} (or belong to another team than the token's)",
                ability="deploy",
            )
        body = as_dict(_json(response))
        if body is None:
            raise self._malformed(what, "not a JSON object")
        return self._by_uuid(body, list(uuids), what)

    def set_preview_env(self, uuid: str, key: str, value: str) -> EnvSet:
        """Set `key` among the application's preview variables (PATCH, or POST when absent).

        The value is sent only in the request body; no message repeats it."""
        _check(uuid)
        if not _KEY_RE.match(key):
            raise self._error(f"preview: invalid environment variable name {key!r}")
        path = f"/api/v1/applications/{uuid}/envs"
        body: dict[str, object] = {"key": key, "value": value, "is_preview": True}
        what = f"PATCH {path} ({key}, preview)"
        response = self._call("PATCH", path, json_body=body, what=what)
        if response.status_code in (200, 201):
            return EnvSet(uuid, None)
        if response.status_code != 404 or _said(response) != "Environment variable not found.":
            raise self._failure(response, what, missing=_app_missing(uuid), ability="write")
        what = f"POST {path} ({key}, preview)"
        # Runtime only: a build-time DATABASE_URL would bake the PR's URL into an image layer.
        body.update(is_runtime=True, is_buildtime=False)
        response = self._call("POST", path, json_body=body, what=what)
        if response.status_code not in (200, 201):
            raise self._failure(response, what, missing=_app_missing(uuid), ability="write")
        created = _text((as_dict(_json(response)) or {}).get("uuid"))
        if not created:
            raise self._malformed(what, "no `uuid` of the created variable")
        return EnvSet(uuid, created)

    def preview_env_keys(self, uuid: str) -> list[str]:
        """The keys of the application's preview variables (GET …/envs, values not read)."""
        _check(uuid)
        what = f"GET /api/v1/applications/{uuid}/envs"
        response = self._call("GET", f"/api/v1/applications/{uuid}/envs", what=what)
        if response.status_code != 200:
            raise self._failure(response, what, missing=_app_missing(uuid), ability="read")
        entries = as_list(_json(response))
        if entries is None:
            raise self._malformed(what, "not a list of variables")
        rows = [as_dict(e) or {} for e in entries]
        return [_text(r.get("key")) for r in rows if r.get("is_preview") is True]

    def delete_env(self, uuid: str, env_uuid: str) -> None:
        """Delete one variable (DELETE …/envs/{env_uuid}); an absent one is already gone."""
        _check(uuid)
        _check(env_uuid)
        path = f"/api/v1/applications/{uuid}/envs/{env_uuid}"
        response = self._call("DELETE", path, what=f"DELETE {path}")
        if response.status_code not in (200, 204, 404):
            raise self._failure(response, f"DELETE {path}", missing="", ability="write")

    def delete_preview(self, uuid: str, pr: int) -> bool:
        """Delete the application's preview of `pr`; False when Coolify had none."""
        _check(uuid)
        _check_pr(pr)
        path = f"/api/v1/applications/{uuid}/previews/{pr}"
        what = f"DELETE {path}"
        response = self._call("DELETE", path, what=what)
        if response.status_code == 200:
            return True
        if response.status_code == 404 and _said(response) == "Preview not found.":
            return False
        raise self._failure(response, what, missing=_app_missing(uuid), ability="write")


def _check(uuid: str) -> None:
    if not _UUID_RE.match(uuid):
        raise ValueError(f"not a Coolify uuid: {uuid!r}")


def _check_pr(pr: int) -> None:
    if isinstance(pr, bool) or pr <= 0:
        raise ValueError(f"not a pull request number: {pr!r}")


def _app_missing(uuid: str) -> str:
    return f"no application {uuid} on this Coolify (check its uuid in wormhole-ci.toml)"


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _said(response: httpx.Response) -> str:
    return _text((as_dict(_json(response)) or {}).get("message"))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
