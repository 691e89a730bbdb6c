"""Deploy one environment: set each application's image tag, deploy, wait, verify, roll back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import httpx

from wormhole_ci.deploy.coolify import Coolify, Deployment, DeploymentTimeout, NotAllQueued
from wormhole_ci.errors import CoolifyError, WormholeCiError
from wormhole_ci.jsonish import as_dict
from wormhole_ci.manifest import Environment

Say = Callable[[str], None]
HEALTH_TIMEOUT = 5.0


VERIFIED = "verified"
"""Every service deployed and its /healthz reports the SHA."""
ROLLED_BACK = "rolled-back"
"""It failed, and every application it changed was rolled back and verified."""
ROLLBACK_FAILED = "rollback-failed"
"""It failed, and a rollback was tried but did not end with the previous build verified."""
NOT_ROLLED_BACK = "failed-not-rolled-back"
"""It failed and (some of) what it changed was left: --no-rollback, no rollback target
known, or Coolify refused the rollback (`DeployResult.reason` says which)."""
REFUSED = "refused"
"""Refused before any deployment started (busy, or Coolify refused the deploy): every image
tag it changed was set back, and no rollback deployment was queued."""
OUTCOMES = (VERIFIED, ROLLED_BACK, ROLLBACK_FAILED, NOT_ROLLED_BACK, REFUSED)
MANUAL_ROLLBACK = (
    "roll it back by hand: find the last good commit (the previous release record, or `git "
    "log --first-parent main`) and run `wormhole-ci deploy --environment {env} --tag <sha>`, "
    "or set the image tag in Coolify and redeploy (docs/rollback.md)"
)


@dataclass
class ServiceDeploy:
    service: str
    application: str | None
    coolify_tag: str | None
    previous_tag: str | None = None
    deployment: str | None = None
    status: str = "pending"
    """pending | deployed | verified | failed | rolled-back | rollback-failed |
    failed-not-rolled-back | refused"""
    detail: str = ""
    tag_changed: bool = False
    """Its docker_registry_image_tag was PATCHed to the new tag (and not set back yet)."""
    rollback_target: str | None = None
    """The image tag it was rolled back to (the previous tag, else a rollback-images entry)."""


@dataclass
class DeployResult:
    environment: str
    sha: str
    outcome: str = "running"
    """One of OUTCOMES: verified | rolled-back | rollback-failed | failed-not-rolled-back |
    refused."""
    reason: str = ""
    """Why, when the outcome is not `verified` (e.g. why nothing was rolled back)."""
    services: list[ServiceDeploy] = field(default_factory=list[ServiceDeploy])
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class DeployFailed(WormholeCiError):
    """Deploying or verifying failed (or was refused); `result` says what was deployed,
    restored and rolled back, and `result.outcome` how it ended."""

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

    @classmethod
    def for_environment(
        cls,
        env: Environment,
        *,
        sha: str,
        image_tag: str,
        rollback: bool,
        poll_interval: float = 2.0,
    ) -> DeployOptions:
        """This commit with the environment's deploy and verify deadlines."""
        return cls(
            sha=sha,
            image_tag=image_tag,
            rollback=rollback,
            deploy_timeout=env.deploy_timeout,
            verify_timeout=env.verify_timeout,
            poll_interval=poll_interval,
        )


def reported_version(url: str, client: httpx.Client) -> str | None:
    """The version a service's /healthz reports (`version`, `sha` or `build_sha`), or None."""
    try:
        response = client.get(url, timeout=HEALTH_TIMEOUT)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return version_in(body)


def version_in(body: object) -> str | None:
    """The version a /healthz answer's JSON reports (`version`, `sha` or `build_sha`)."""
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


class _Refused(WormholeCiError):
    """Refused before any deployment started."""


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
        """The outcome is decided here (`_refuse`, `_not_rolled_back`, `_roll_back`)."""
        started = self.clock()
        try:
            try:
                self._deploy()
            except _Refused as exc:
                raise DeployFailed(self._refuse(str(exc)), self.result) from None
            except (CoolifyError, _VerifyFailed) as exc:
                if not self.options.rollback:
                    raise DeployFailed(self._not_rolled_back(str(exc)), self.result) from None
                raise DeployFailed(f"{exc}\n{self._roll_back()}", self.result) from None
            self.result.outcome = VERIFIED
            return self.result
        finally:
            self.result.seconds = round(self.clock() - started, 2)

    def _entry(self, service: str) -> ServiceDeploy:
        return next(s for s in self.result.services if s.service == service)

    def _changed(self) -> list[ServiceDeploy]:
        return [s for s in self.result.services if s.application and s.tag_changed]

    # -- deploying -----------------------------------------------------------------------

    def _deploy(self) -> None:
        targets = self.env.targets
        for target in targets:
            self.result.services.append(
                ServiceDeploy(target.service, target.application, target.tag)
            )
        try:
            busy = self.coolify.busy([t.application for t in targets if t.application])
        except CoolifyError as exc:
            raise _Refused(str(exc)) from None
        if busy:
            raise _Refused(
                f"{self.env.name}: a deployment is already queued or running for "
                f"{', '.join(busy)}; wait for it (or cancel it in Coolify) and run again"
            )
        # Remember what runs now (for rollback), then point every application at the new tag.
        for entry in self.result.services:
            if entry.application:
                try:
                    app = self.coolify.application(entry.application)
                    current = app.get("docker_registry_image_tag")
                    entry.previous_tag = current if isinstance(current, str) else None
                    self.coolify.set_image_tag(entry.application, self.options.image_tag)
                except CoolifyError as exc:
                    raise _Refused(str(exc)) from None
                entry.tag_changed = True
                self.say(
                    f"{entry.service}: image tag {entry.previous_tag or '?'} -> "
                    f"{self.options.image_tag}"
                )
        deployments, failures = self._trigger()
        self._wait(deployments, failures)
        self._verify()

    def _trigger(self) -> tuple[dict[str, Deployment], list[str]]:
        """One deploy call for the uuid targets, one per tag target; keyed by uuid or tag.
        Refused (`_Refused`) when Coolify queued nothing at all."""
        out: dict[str, Deployment] = {}
        failures: list[str] = []
        calls: list[tuple[str | None, list[str], list[str]]] = []
        uuids = [t.application for t in self.env.targets if t.application]
        if uuids:
            calls.append((None, uuids, []))
        calls += [(t.tag, [], [t.tag]) for t in self.env.targets if t.tag]
        for key, by_uuid, by_tag in calls:
            try:
                queued = self.coolify.deploy(uuids=by_uuid, tags=by_tag)
            except NotAllQueued as exc:
                failures.append(str(exc))
                queued = exc.queued
            except CoolifyError as exc:
                failures.append(str(exc))
                continue
            for deployment in queued:
                out.setdefault(key or deployment.resource_uuid, deployment)
        if not out:
            raise _Refused("\n".join(failures))
        return out, failures

    def _wait(self, deployments: dict[str, Deployment], failures: list[str]) -> None:
        """Wait for every deployment against one deadline, even after one failed: a rollback
        started while another deployment is still running would be overtaken by it."""
        followed: list[tuple[ServiceDeploy, Deployment]] = []
        for entry in self.result.services:
            deployment = deployments.get(entry.application or entry.coolify_tag or "")
            if deployment is None:
                failures.append(f"{entry.service}: Coolify started no deployment for it")
                entry.status = "failed"
                continue
            entry.deployment = deployment.deployment_uuid
            followed.append((entry, deployment))
        timeout = self.options.deploy_timeout
        outcomes = self.coolify.wait_all([d for _, d in followed], timeout=timeout)
        unfinished: list[str] = []
        for (entry, _), outcome in zip(followed, outcomes, strict=True):
            if isinstance(outcome, DeploymentTimeout):
                entry.status, entry.detail = "failed", str(outcome)
                entry.deployment = outcome.deployment_uuid
                unfinished.append(
                    f"{entry.service} ({outcome.application} deployment "
                    f"{outcome.deployment_uuid}: {outcome.last_status})"
                )
            elif isinstance(outcome, CoolifyError):
                failures.append(f"{entry.service}: {outcome}")
                entry.status, entry.detail = "failed", str(outcome)
            else:
                entry.deployment = outcome.deployment_uuid
                entry.status = "deployed"
                self.say(f"{entry.service}: deployment {outcome.deployment_uuid} {outcome.status}")
        if unfinished:
            failures.insert(
                0,
                f"deploy deadline of {timeout:g}s passed with {len(unfinished)} "
                f"application(s) unfinished: {', '.join(unfinished)}. They may still be "
                f"running: look at them in Coolify ({self.coolify.base_url}), cancel the stuck "
                "ones there, or raise deploy_timeout",
            )
        if failures:
            raise CoolifyError("\n".join(failures))

    def _await_versions(self, expected: dict[str, tuple[str, str]]) -> dict[str, str | None]:
        """Poll each service's health URL until it reports its expected version (service →
        (url, sha or sha prefix)), all against one deadline; returns the ones that never did,
        with what they said."""
        deadline = self.clock() + self.options.verify_timeout
        waiting = dict(expected)
        last: dict[str, str | None] = {}
        while True:
            for service, (url, version) in list(waiting.items()):
                last[service] = reported_version(url, self.client)
                if _matches(last[service], version):
                    del waiting[service]
            remaining = deadline - self.clock()
            if not waiting or remaining <= 0:
                return {service: last.get(service) for service in waiting}
            self.sleep(min(self.options.poll_interval, remaining))

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
                entry.status = VERIFIED
                self.say(f"{entry.service}: {urls[entry.service]} reports {sha[:7]}")
        if wrong:
            raise _VerifyFailed(
                f"verify failed after {self.options.verify_timeout:.0f} s: "
                + "; ".join(
                    f"{s} ({urls[s]}) reports {v or 'no version'}, not {sha[:7]}"
                    for s, v in wrong.items()
                )
            )

    # -- how it ended --------------------------------------------------------------------

    def _refuse(self, cause: str) -> str:
        """Nothing was deployed: set back every image tag this run changed, queue nothing."""
        self.result.outcome = REFUSED
        restored: list[str] = []
        kept: list[str] = []
        for entry in self.result.services:
            entry.status = REFUSED
            if not (entry.application and entry.tag_changed):
                continue
            if entry.previous_tag is None:
                entry.detail = "its image tag was not set before: left at the new tag"
                kept.append(f"{entry.service} (no previous image tag to set back)")
                continue
            try:
                self.coolify.set_image_tag(entry.application, entry.previous_tag)
            except CoolifyError as exc:
                entry.detail = f"its image tag could not be set back: {exc}"
                kept.append(f"{entry.service} ({exc})")
                continue
            entry.tag_changed = False
            entry.detail = f"image tag set back to {entry.previous_tag}"
            restored.append(entry.service)
            self.say(
                f"{entry.service}: image tag {self.options.image_tag} -> {entry.previous_tag} "
                "(set back)"
            )
        done = (
            f"image tags set back for {', '.join(restored)}"
            if restored
            else "no image tag had been changed"
        )
        said = f"{done}; no deployment and no rollback deployment was queued"
        first = cause.strip().splitlines()[0] if cause.strip() else "refused"
        self.result.reason = f"refused before any deployment started ({first}); {said}"
        text = f"{cause}\nrefused before any deployment started: {said}"
        if kept:
            text += (
                f"\nNOT set back: {'; '.join(kept)}: set the image tag in Coolify by hand "
                "(docs/rollback.md)"
            )
        return text

    def _not_rolled_back(self, cause: str) -> str:
        changed = ", ".join(e.service for e in self._changed()) or "none"
        self.result.outcome = NOT_ROLLED_BACK
        self.result.reason = (
            f"--no-rollback: the applications changed ({changed}) stay on image tag "
            f"{self.options.image_tag}"
        )
        return (
            f"{cause}\nnot rolled back ({self.result.reason}); to undo it, "
            + MANUAL_ROLLBACK.format(env=self.env.name)
        )

    def _target(self, entry: ServiceDeploy) -> str | None:
        """The recorded previous tag; else the newest other image Coolify still holds (its
        rollback-images list, skipping the tag that failed); else None."""
        failed = self.options.image_tag
        if entry.previous_tag and entry.previous_tag != failed:
            return entry.previous_tag
        assert entry.application is not None
        for image in self.coolify.rollback_images(entry.application):
            if image.tag != failed:
                return image.tag
        return None

    def _roll_back(self) -> str:
        """Roll every application this run changed back to its target, wait for all the
        rollback deployments against one deadline, check that each /healthz reports the
        target build again; decide the outcome and return a summary (the progress lines
        were said already)."""
        changed = self._changed()
        urls = {t.service: t.health_url for t in self.env.targets}
        manual = MANUAL_ROLLBACK.format(env=self.env.name)
        not_done: list[str] = []
        queued: list[tuple[ServiceDeploy, Deployment, str]] = []
        for entry in changed:
            started = self._start_rollback(entry)
            if started is None:
                not_done.append(f"{entry.service}: {entry.detail}")
            else:
                queued.append((entry, *started))
        outcomes = self.coolify.wait_all(
            [d for _, d, _ in queued], timeout=self.options.deploy_timeout
        )
        expected: dict[str, tuple[str, str]] = {}
        for (entry, _, target), outcome in zip(queued, outcomes, strict=True):
            if isinstance(outcome, CoolifyError):
                entry.status, entry.detail = ROLLBACK_FAILED, str(outcome)
                self.say(f"ROLLBACK FAILED for {entry.service}: {outcome}")
                continue
            entry.status = ROLLED_BACK
            entry.detail += f" ({outcome.deployment_uuid} {outcome.status})"
            self.say(f"rolled back {entry.service} to {target}: {entry.detail}")
            expected[entry.service] = (urls[entry.service], target)
        wrong = self._await_versions(expected) if expected else {}
        for service in expected:
            entry = self._entry(service)
            if service in wrong:
                reported = wrong[service] or "nothing"
                entry.status = ROLLBACK_FAILED
                entry.detail += f"; /healthz reports {reported} after the rollback"
                self.say(f"ROLLBACK NOT VERIFIED for {service}: /healthz reports {reported}")
            else:
                self.say(f"{service}: {urls[service]} reports {entry.rollback_target} again")
        return self._rollback_summary(changed, not_done, manual)

    def _start_rollback(self, entry: ServiceDeploy) -> tuple[Deployment, str] | None:
        """Queue the rollback of one application (its deployment and target), or None with
        `entry` saying why it is not rolled back."""
        assert entry.application is not None
        try:
            target = self._target(entry)
        except CoolifyError as exc:
            entry.status = NOT_ROLLED_BACK
            entry.detail = f"no rollback target: asking Coolify for its images failed: {exc}"
            return None
        if target is None:
            entry.status = NOT_ROLLED_BACK
            entry.detail = (
                f"no previous image known for {entry.application} (no previous image tag "
                "recorded and Coolify lists no other image for it)"
            )
            return None
        entry.rollback_target = target
        try:
            # The configured tag first: Coolify's rollback changes only what runs, and a
            # later restart or redeploy must not bring the failed image back.
            self.coolify.set_image_tag(entry.application, target)
            deployment = self.coolify.rollback(entry.application, to=target)
            entry.detail = "Coolify rollback"
            if deployment is None:  # no rollback endpoint: the target tag, deployed again
                (deployment,) = self.coolify.deploy(uuids=[entry.application])
                entry.detail = f"image tag {target} redeployed"
        except CoolifyError as exc:
            entry.status = NOT_ROLLED_BACK
            entry.detail = f"Coolify refused the rollback to {target}: {exc}"
            return None
        return deployment, target

    def _rollback_summary(
        self, changed: list[ServiceDeploy], not_done: list[str], manual: str
    ) -> str:
        rolled = [e.service for e in changed if e.status == ROLLED_BACK]
        broken = [e.service for e in changed if e.status == ROLLBACK_FAILED]
        lines: list[str] = []
        if rolled:
            lines.append(f"rolled back and verified: {', '.join(rolled)}")
        if broken:
            self.result.outcome = ROLLBACK_FAILED
            self.result.reason = f"the rollback of {', '.join(broken)} did not verify"
            lines.append(f"rollback FAILED for {', '.join(broken)} (see above): {manual}")
        if not_done:
            if not broken:
                self.result.outcome = NOT_ROLLED_BACK
                self.result.reason = "; ".join(not_done)
            lines += [f"not rolled back: {line}" for line in not_done]
            lines.append(f"for those, {manual}")
        if not changed:
            self.result.outcome = NOT_ROLLED_BACK
            self.result.reason = "no application's image tag was changed: nothing to roll back"
            lines.append(self.result.reason)
        elif not broken and not not_done:
            self.result.outcome = ROLLED_BACK
            self.result.reason = "every application changed was rolled back and verified"
        return "\n".join(lines)
