"""Deploy one environment: set each application's image tag, deploy, wait, verify, roll back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import httpx

from wormhole_ci.deploy.coolify import Coolify, Deployment
from wormhole_ci.errors import CoolifyError, WormholeCiError
from wormhole_ci.jsonish import as_dict
from wormhole_ci.manifest import Environment

Say = Callable[[str], None]
HEALTH_TIMEOUT = 5.0


@dataclass
class ServiceDeploy:
    service: str
    application: str | None
    coolify_tag: str | None
    previous_tag: str | None = None
    deployment: str | None = None
    status: str = "pending"
    """pending | deployed | verified | failed | rolled-back | rollback-failed"""
    detail: str = ""


@dataclass
class DeployResult:
    environment: str
    sha: str
    outcome: str = "running"
    """verified | failed | rolled-back"""
    services: list[ServiceDeploy] = field(default_factory=list[ServiceDeploy])
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class DeployFailed(WormholeCiError):
    """Deploying or verifying failed; `result` says what was deployed and rolled back."""

    def __init__(self, message: str, result: DeployResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class DeployOptions:
    sha: str
    """The full commit SHA: /healthz must report it."""
    image_tag: str
    """The registry tag Coolify pulls (the short SHA)."""
    rollback: bool = True
    deploy_timeout: float = 900.0
    verify_timeout: float = 300.0
    poll_interval: float = 2.0


def reported_version(url: str, client: httpx.Client) -> str | None:
    """The version a service's /healthz reports (`version`, `sha` or `build_sha`), or None."""
    try:
        response = client.get(url, timeout=HEALTH_TIMEOUT)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    fields = as_dict(body) or {}
    for key in ("version", "sha", "build_sha"):
        value = fields.get(key)
        if isinstance(value, str):
            return value
    return None


def _matches(reported: str | None, sha: str) -> bool:
    """The reported version names this commit: the full SHA or an abbreviation of at least
    7 characters of it (a `dev` or an empty answer never matches)."""
    if reported is None or len(reported) < 7 or len(sha) < 7:
        return False
    return sha.startswith(reported) or reported.startswith(sha)


def deploy_environment(
    env: Environment,
    coolify: Coolify,
    options: DeployOptions,
    say: Say,
    *,
    health: httpx.Client | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployResult:
    """Tag, deploy and verify every service of `env`; on failure roll back what changed."""
    client = health or httpx.Client(follow_redirects=True)
    rollout = _Rollout(env, coolify, options, say, client, clock, sleep)
    try:
        return rollout.run()
    finally:
        if health is None:
            client.close()


class _VerifyFailed(WormholeCiError):
    pass


@dataclass
class _Rollout:
    env: Environment
    coolify: Coolify
    options: DeployOptions
    say: Say
    client: httpx.Client
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    result: DeployResult = field(init=False)

    def __post_init__(self) -> None:
        self.result = DeployResult(environment=self.env.name, sha=self.options.sha)

    def run(self) -> DeployResult:
        started = self.clock()
        try:
            self._deploy()
            self.result.outcome = "verified"
            return self.result
        except (CoolifyError, _VerifyFailed) as exc:
            message = str(exc)
            if self.options.rollback:
                message += "\n" + self._roll_back()
                undone = all(s.status in ("rolled-back", "pending") for s in self.result.services)
                self.result.outcome = "rolled-back" if undone else "failed"
            else:
                self.result.outcome = "failed"
                message += "\n(no rollback: --no-rollback)"
            raise DeployFailed(message, self.result) from None
        finally:
            self.result.seconds = round(self.clock() - started, 2)

    def _entry(self, service: str) -> ServiceDeploy:
        return next(s for s in self.result.services if s.service == service)

    def _deploy(self) -> None:
        targets = self.env.targets
        for target in targets:
            self.result.services.append(
                ServiceDeploy(target.service, target.application, target.tag)
            )
        busy = self.coolify.busy([t.application for t in targets if t.application])
        if busy:
            raise CoolifyError(
                f"{self.env.name}: a deployment is already queued or running for "
                f"{', '.join(busy)}; wait for it (or cancel it in Coolify) and run again"
            )
        # Remember what runs now (for rollback), then point every application at the new tag.
        for entry in self.result.services:
            if entry.application:
                app = self.coolify.application(entry.application)
                current = app.get("docker_registry_image_tag")
                entry.previous_tag = current if isinstance(current, str) else None
                self.coolify.set_image_tag(entry.application, self.options.image_tag)
                self.say(
                    f"{entry.service}: image tag {entry.previous_tag or '?'} -> "
                    f"{self.options.image_tag}"
                )
        deployments = self._trigger()
        # Wait for every deployment, even after one failed: a rollback started while another
        # deployment is still running would be overtaken by it.
        failures: list[str] = []
        for entry in self.result.services:
            deployment = deployments.get(entry.application or entry.coolify_tag or "")
            if deployment is None:
                failures.append(f"{entry.service}: Coolify started no deployment for it")
                entry.status = "failed"
                continue
            entry.deployment = deployment.deployment_uuid
            try:
                status = self.coolify.wait(deployment, timeout=self.options.deploy_timeout)
            except CoolifyError as exc:
                failures.append(f"{entry.service}: {exc}")
                entry.status, entry.detail = "failed", str(exc)
                continue
            entry.deployment = status.deployment_uuid
            entry.status = "deployed"
            self.say(f"{entry.service}: deployment {status.deployment_uuid} {status.status}")
        if failures:
            raise CoolifyError("\n".join(failures))
        self._verify()

    def _trigger(self) -> dict[str, Deployment]:
        """One deploy call for the uuid targets, one per tag target; keyed by uuid or tag."""
        out: dict[str, Deployment] = {}
        uuids = [t.application for t in self.env.targets if t.application]
        if uuids:
            for deployment in self.coolify.deploy(uuids=uuids):
                out[deployment.resource_uuid] = deployment
        for target in self.env.targets:
            if target.tag:
                for deployment in self.coolify.deploy(tags=[target.tag]):
                    out.setdefault(target.tag, deployment)
        return out

    def _await_versions(self, expected: dict[str, tuple[str, str]]) -> dict[str, str | None]:
        """Poll each service's health URL until it reports its expected version (service →
        (url, sha or sha prefix)); returns the ones that never did, with what they said."""
        deadline = self.clock() + self.options.verify_timeout
        waiting = dict(expected)
        last: dict[str, str | None] = {}
        while True:
            for service, (url, version) in list(waiting.items()):
                last[service] = reported_version(url, self.client)
                if _matches(last[service], version):
                    del waiting[service]
            if not waiting or self.clock() >= deadline:
                return {service: last.get(service) for service in waiting}
            self.sleep(self.options.poll_interval)

    def _verify(self) -> None:
        """Coolify's "finished" is not proof: each /healthz must report the shipped SHA."""
        sha = self.options.sha
        urls = {t.service: t.health_url for t in self.env.targets}
        wrong = self._await_versions({s: (u, sha) for s, u in urls.items()})
        for entry in self.result.services:
            if entry.service in wrong:
                entry.status = "failed"
                entry.detail = f"/healthz reports {wrong[entry.service] or 'nothing'}"
            else:
                entry.status = "verified"
                self.say(f"{entry.service}: {urls[entry.service]} reports {sha[:7]}")
        if wrong:
            raise _VerifyFailed(
                f"verify failed after {self.options.verify_timeout:.0f} s: "
                + "; ".join(
                    f"{s} ({urls[s]}) reports {v or 'no version'}, not {sha[:7]}"
                    for s, v in wrong.items()
                )
            )

    def _roll_back(self) -> str:
        """Put back the previous tag of every application we changed, then check that each
        /healthz reports the previous build again; report what happened."""
        lines: list[str] = []
        expected: dict[str, tuple[str, str]] = {}
        urls = {t.service: t.health_url for t in self.env.targets}
        for entry in self.result.services:
            if not entry.application or entry.previous_tag is None:
                continue
            try:
                # The configured tag first: Coolify's rollback changes only what runs, and a
                # later restart or redeploy must not bring the failed image back.
                self.coolify.set_image_tag(entry.application, entry.previous_tag)
                deployment = self.coolify.rollback(entry.application, to=entry.previous_tag)
                how = "Coolify rollback"
                if deployment is None:  # no rollback endpoint: the previous tag, deployed again
                    (deployment,) = self.coolify.deploy(uuids=[entry.application])
                    how = f"image tag {entry.previous_tag} redeployed"
                status = self.coolify.wait(deployment, timeout=self.options.deploy_timeout)
            except CoolifyError as exc:
                entry.status = "rollback-failed"
                entry.detail = str(exc)
                lines.append(f"ROLLBACK FAILED for {entry.service}: {exc}")
                self.say(lines[-1])
                continue
            entry.status = "rolled-back"
            entry.detail = f"{how} ({status.deployment_uuid} {status.status})"
            lines.append(f"rolled back {entry.service} to {entry.previous_tag}: {how}")
            self.say(lines[-1])
            expected[entry.service] = (urls[entry.service], entry.previous_tag)
        for service, reported in self._await_versions(expected).items() if expected else ():
            entry = self._entry(service)
            entry.status = "rollback-failed"
            entry.detail += f"; /healthz reports {reported or 'nothing'} after the rollback"
            lines.append(
                f"ROLLBACK NOT VERIFIED for {service}: /healthz reports {reported or 'nothing'}"
            )
        return "\n".join(lines) or "nothing to roll back"
