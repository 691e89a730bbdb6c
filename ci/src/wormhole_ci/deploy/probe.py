"""A deploy's dry run: read an environment's wiring, change nothing.

What `deploy --dry-run`, `release --dry-run --probe` and `dagger call deploy --dry-run` run,
written once: for each service, GET its Coolify application (does it exist, is the token
valid, which image tag is configured), GET its latest deployments (one queued or running
makes a real deploy refuse), and GET its health URL (reachable, and what it reports). Only
GET requests, never a PATCH, POST or DELETE. The result says per application what a deploy
would change (`tag X → Y`, or `unchanged`) and every reason a real deploy would be refused
or could not verify, each with its fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import httpx

from wormhole_ci.deploy.coolify import Coolify, CoolifyRefusal
from wormhole_ci.deploy.rollout import HEALTH_TIMEOUT, version_in
from wormhole_ci.errors import CoolifyError, WormholeCiError
from wormhole_ci.manifest import DeployTarget, Environment

READY = "dry-run"
"""Every check passed: a deploy would start (what it would change is listed)."""
REFUSED = "refused"
"""A deploy would be refused (or could not verify): `problems` says why and what to fix."""

ABILITIES_NOTE = (
    "the token's write and deploy abilities are not checked (that would take a write); "
    "a deploy needs read, write and deploy"
)


@dataclass
class ServiceProbe:
    service: str
    application: str | None
    coolify_tag: str | None
    health_url: str
    current_tag: str | None = None
    """The application's docker_registry_image_tag now (None: unknown or never set)."""
    change: str = "not checked"
    """What a deploy would do to it: `tag X → Y`, `unchanged (Y)`, or why it is unknown."""
    deployments: str = "not checked"
    """`none queued or running`, or the active deployments."""
    health: str = "not checked"
    """What the health URL answered."""
    problems: list[str] = field(default_factory=list[str])


@dataclass
class ProbeResult:
    environment: str
    sha: str
    image_tag: str
    outcome: str = READY
    """`dry-run` (a deploy would start) or `refused` (see `problems`)."""
    registry: str = "not checked"
    problems: list[str] = field(default_factory=list[str])
    """Every reason a deploy would be refused or could not verify, each with its fix."""
    notes: list[str] = field(default_factory=list[str])
    services: list[ServiceProbe] = field(default_factory=list[ServiceProbe])

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    def lines(self) -> list[str]:
        """The report: a header, the registry, one line per service, notes, problems."""
        out = [
            f"deploy {self.image_tag} to {self.environment}: dry run (GET requests only; "
            "nothing is changed or deployed)",
            f"registry: {self.registry}",
        ]
        for s in self.services:
            where = f"application {s.application}" if s.application else f"tag {s.coolify_tag}"
            out.append(
                f"{s.service} ({where}): {s.change}; deployments: {s.deployments}; "
                f"{s.health_url}: {s.health}"
            )
        out += [f"note: {n}" for n in self.notes]
        out += [f"problem: {p}" for p in self.problems]
        return out

    def summary(self) -> str:
        """The last line: what a real deploy would do."""
        head = f"deploy dry run: {self.environment} {self.image_tag}:"
        if self.outcome == REFUSED:
            return (
                f"{head} a deploy would be refused or fail ({len(self.problems)} problem(s) above)"
            )
        checked = [s for s in self.services if s.application]
        same = sum(1 for s in checked if s.current_tag == self.image_tag)
        return (
            f"{head} a deploy would proceed ({len(checked) - same} application(s) to change, "
            f"{same} unchanged)"
        )


def probe_environment(
    env: Environment,
    coolify: Coolify,
    *,
    sha: str,
    image_tag: str,
    published: Callable[[], None] | None = None,
    registry_note: str = "not checked",
    health: httpx.Client | None = None,
) -> ProbeResult:
    """Read what a deploy of `image_tag` to `env` would find, with GET requests only.

    `published` is the registry check a deploy makes first (it raises when an image is
    missing); without it the registry line says `registry_note`. Never raises for what it
    finds: every refusal is a problem in the result.
    """
    result = ProbeResult(env.name, sha, image_tag, registry=registry_note)
    if published is not None:
        try:
            published()
        except WormholeCiError as exc:
            result.registry = "images missing or unreadable (see problems)"
            result.problems.append(str(exc))
        else:
            result.registry = f"every image of {image_tag} is in {env.registry}"
    stopped: str | None = None
    for target in env.targets:
        entry = ServiceProbe(target.service, target.application, target.tag, target.health_url)
        result.services.append(entry)
        if target.application is None:
            entry.change = (
                f"deployed by Coolify tag {target.tag}: the applications it selects are "
                "resolved only when deploying (not checked)"
            )
            entry.deployments = "not checked (deployed by tag)"
        elif stopped is not None:
            entry.change = entry.deployments = f"not checked ({stopped})"
        else:
            stopped = _probe_application(env, coolify, target, entry, image_tag)
    client = health or httpx.Client(follow_redirects=True)
    try:
        for target, entry in zip(env.targets, result.services, strict=True):
            _probe_health(env, target, entry, client, sha)
    finally:
        if health is None:
            client.close()
    if any(s.application for s in result.services):
        result.notes.append(ABILITIES_NOTE)
    for entry in result.services:
        result.problems.extend(entry.problems)
    result.outcome = REFUSED if result.problems else READY
    return result


def _probe_application(
    env: Environment,
    coolify: Coolify,
    target: DeployTarget,
    entry: ServiceProbe,
    image_tag: str,
) -> str | None:
    """GET the application and its deployments; the reason to stop asking Coolify (a token
    it rejects, an API it refuses, a server that does not answer), else None."""
    where = f"{env.name}/{target.service}"
    uuid = target.application
    assert uuid is not None
    try:
        app = coolify.application(uuid)
    except CoolifyRefusal as exc:
        entry.change = f"unknown (HTTP {exc.status})"
        entry.deployments = "not checked"
        entry.problems.append(f"{where}: {exc}")
        if exc.status in (401, 403, 400):
            return f"Coolify refused the token or the API on {target.service}'s application"
        return None
    except CoolifyError as exc:
        entry.change = entry.deployments = "unknown (Coolify did not answer)"
        entry.problems.append(f"{where}: {exc}")
        return "Coolify did not answer"
    current = app.get("docker_registry_image_tag")
    entry.current_tag = current if isinstance(current, str) and current else None
    if entry.current_tag == image_tag:
        entry.change = f"unchanged ({image_tag}; redeployed)"
    else:
        entry.change = f"tag {entry.current_tag or '(none)'} → {image_tag}"
    try:
        active = coolify.active_deployments(uuid)
    except CoolifyError as exc:
        entry.deployments = "unknown"
        entry.problems.append(f"{where}: {exc}")
        return None
    if not active:
        entry.deployments = "none queued or running"
        return None
    listed = ", ".join(f"{d} ({status})" for d, status in active)
    entry.deployments = listed
    entry.problems.append(
        f"{where}: application {uuid} has a deployment queued or running ({listed}): a deploy "
        f"would be refused; wait for it to finish (or cancel it in Coolify at "
        f"{coolify.base_url}) and run again"
    )
    return None


def _probe_health(
    env: Environment, target: DeployTarget, entry: ServiceProbe, client: httpx.Client, sha: str
) -> None:
    """One bounded GET of the health URL: what it reports, or why a deploy could not verify."""
    where = f"{env.name}/{target.service}"
    url = target.health_url
    try:
        response = client.get(url, timeout=HEALTH_TIMEOUT)
    except httpx.HTTPError as exc:
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        entry.health = f"unreachable ({reason})"
        entry.problems.append(
            f"{where}: health URL {url} is unreachable ({reason}): a deploy could not verify "
            f"the SHA; check health_url in [environments.{env.name}.services.{target.service}] "
            "and that it is reachable from this machine"
        )
        return
    if response.status_code != 200:
        entry.health = f"HTTP {response.status_code}"
        entry.problems.append(
            f"{where}: health URL {url} answers HTTP {response.status_code}: a deploy could not "
            "verify the SHA; point health_url at the service's /healthz (it answers 200 with "
            "the build SHA)"
        )
        return
    try:
        version = version_in(response.json())
    except ValueError:
        version = None
    if not version:
        entry.health = "answers 200 without a version"
        entry.problems.append(
            f"{where}: health URL {url} reports no version: a deploy could not verify the SHA; "
            "the service's /healthz must report its build SHA as `version`, `sha` or `build_sha`"
        )
        return
    now = "this commit" if sha.startswith(version) or version.startswith(sha) else "running now"
    entry.health = f"reports {version} ({now})"
