"""The Coolify area of drift: every application on the image of one release (the expected one
when known), and the Hasura engine on the pinned engine image."""

from __future__ import annotations

from collections import Counter

from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.drift.report import Area, AreaResult, DriftItem
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.hasura.environment import ENGINE_TAG
from wormhole_ci.images.spec import Revision
from wormhole_ci.manifest import Environment


def coolify_drift(env: Environment, coolify: Coolify, expect_sha: str | None) -> AreaResult:
    """Each application's configured image tag against `expect_sha`'s (the environment's
    last release), else against the tag most of them run."""
    result = AreaResult(Area.COOLIFY)
    tags: dict[str, tuple[str, str]] = {}
    """service → (application uuid, its image tag)."""
    try:
        for target in env.targets:
            if not target.application:
                result.checked.append(
                    f"{target.service}: deployed by Coolify tag {target.tag!r}, which names no "
                    "single application: not compared (name its application to compare it)"
                )
                continue
            app = coolify.application(target.application)
            tag = app.get("docker_registry_image_tag")
            tags[target.service] = (target.application, tag if isinstance(tag, str) else "")
        engine = env.hasura.application if env.hasura else None
        engine_tag = (
            coolify.application(engine).get("docker_registry_image_tag") if engine else None
        )
    except WormholeCiError as exc:
        result.error = f"Coolify at {env.coolify_url}: {exc}"
        return result
    if expect_sha:
        expected, why = Revision(expect_sha).short, "the environment's last release"
    else:
        counts = Counter(tag for _, tag in tags.values() if tag)
        expected = max(sorted(counts), key=lambda t: counts[t]) if counts else ""
        why = "the tag most applications run (pass --expect-sha to compare with a release)"
    result.checked.append(
        f"{env.coolify_url}: image tags of {len(tags)} applications against {expected or '?'} "
        f"({why})"
    )
    for service, (uuid, tag) in sorted(tags.items()):
        if tag != expected:
            result.items.append(
                DriftItem(
                    Area.COOLIFY,
                    "image-tag",
                    f"{service} (application {uuid})",
                    f"runs image tag {tag or '(none)'}, not {expected} ({why})",
                    f"wormhole-ci deploy --environment {env.name} --tag {expected}",
                )
            )
    if engine:
        result.checked.append(f"hasura engine (application {engine}): pinned {ENGINE_TAG}")
        if engine_tag != ENGINE_TAG:
            result.items.append(
                DriftItem(
                    Area.COOLIFY,
                    "engine-image",
                    f"hasura engine (application {engine})",
                    f"runs {engine_tag or '(no tag)'}, not the pinned {ENGINE_TAG}",
                    f"wormhole-ci hasura-apply --environment {env.name}",
                )
            )
    return result
