"""Loading and validating `wormhole-ci.toml`, the monorepo manifest."""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from wormhole_ci.errors import ManifestError
from wormhole_ci.jsonish import as_dict, as_list, as_str_list
from wormhole_ci.waivers import IgnoreEntry, parse_ignores

MANIFEST_NAME = "wormhole-ci.toml"
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ServiceKind(StrEnum):
    """The kinds of service the pipeline knows how to check."""

    NODE = "node"
    NUXT = "nuxt"
    PYTHON = "python"
    HASURA = "hasura"
    DELIVERY = "delivery"
    """The operations configuration (observability/ and coolify/), validated as a whole."""


DEFAULT_RUNBOOKS = "docs/runbooks"
"""Where a delivery service's runbooks live unless `runbooks` says otherwise."""


@dataclass(frozen=True)
class TaskOverride:
    """A service's replacement for (or removal of) one task's default command."""

    enabled: bool = True
    """False switches the task off."""
    run: tuple[str, ...] | None = None
    """The argv to run instead of the convention; None keeps the default command."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment for this task (names and plain values, never secrets)."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service as the manifest declares it."""

    name: str
    kind: ServiceKind
    path: str
    """Directory relative to the monorepo root, POSIX separators."""
    tasks: Mapping[str, TaskOverride] = field(default_factory=dict[str, TaskOverride])
    database: str | None = None
    """Hasura only: the service whose Prisma migrations define the database schema."""
    migrations: str | None = None
    """Hasura only: Hasura's own migrations directory, relative to the service (POSIX);
    exactly one of `database` and `migrations` is set."""
    dockerfile: str | None = None
    """The service's Dockerfile relative to its path; None: `Dockerfile` if it exists."""
    runbooks: str | None = None
    """Delivery only: the runbooks directory relative to the monorepo root (POSIX)."""


@dataclass(frozen=True)
class SecuritySettings:
    """The `[security]` table: the default threshold and the waivers."""

    fail_on: str = "high"
    ignore: tuple[IgnoreEntry, ...] = ()


@dataclass(frozen=True)
class DeployTarget:
    """One service of one environment: its Coolify application and its public health URL."""

    service: str
    application: str | None
    """The Coolify application UUID (deployed by uuid), or None when `tag` is used."""
    tag: str | None
    """A Coolify tag selecting the application (deployed by tag)."""
    health_url: str


@dataclass(frozen=True)
class HasuraTarget:
    """`[environments.<name>.hasura]`: the environment's Hasura engine."""

    url: str
    """The engine's base URL (its metadata API is `<url>/v1/metadata`)."""
    admin_secret: str
    """The environment variable holding the admin secret (never the secret itself)."""
    application: str | None = None
    """The engine's Coolify application UUID: redeployed when the pinned engine image changes."""


@dataclass(frozen=True)
class ObservabilityTarget:
    """`[environments.<name>.observability]`: where the pipeline pushes its own signals."""

    pushgateway_url: str
    """The Prometheus Pushgateway's base URL (metrics go to `<url>/metrics/job/wormhole-ci/...`)."""
    pushgateway_auth: str | None = None
    """The environment variable holding `user:password` (HTTP basic auth) or a bearer token
    (no `:`); None: the gateway takes anonymous pushes. Never the credential itself."""


@dataclass(frozen=True)
class PreviewTarget:
    """`[environments.<name>.preview]`: per-pull-request previews of the environment's apps."""

    database_url: str
    """The environment variable holding the preview PostgreSQL's URL (a role that may create
    databases); never the URL itself."""
    services: Mapping[str, str]
    """Service → its preview health URL template (`{pr}` is the pull request number)."""
    database_env: str = "DATABASE_URL"
    """The key of the preview environment variable set on each app to its PR's database URL."""


@dataclass(frozen=True)
class NotifyTarget:
    """`[environments.<name>.notify]`: where release outcomes are announced."""

    kind: str
    """`slack` (an incoming webhook: `{"text"}`) or `webhook` (a generic JSON POST)."""
    url_secret: str
    """The environment variable holding the webhook URL (it is a credential: never printed)."""


@dataclass(frozen=True)
class Environment:
    """`[environments.<name>]`: where a release of the monorepo goes."""

    name: str
    coolify_url: str
    registry: str
    registry_username: str | None
    secrets: Mapping[str, str]
    """Role (coolify_token, database_url, registry_password) → environment variable name."""
    targets: tuple[DeployTarget, ...]
    deploy_timeout: float = 900.0
    verify_timeout: float = 300.0
    hasura: HasuraTarget | None = None
    """None: the environment runs no Hasura engine (the release skips the hasura step)."""
    observability: ObservabilityTarget | None = None
    """None: release, migrate and deploy push no metrics for this environment."""
    preview: PreviewTarget | None = None
    """None: `wormhole-ci preview` refuses this environment."""
    notify: NotifyTarget | None = None
    """None: release outcomes go to no chat or webhook."""


SECRET_ROLES = ("coolify_token", "database_url", "registry_password")


@dataclass(frozen=True)
class Manifest:
    """The validated manifest of one monorepo."""

    root: Path
    project: str
    services: tuple[ServiceSpec, ...]
    repository: str | None = None
    """The project's source URL (the images' org.opencontainers.image.source label)."""
    security: SecuritySettings = field(default_factory=SecuritySettings)
    environments: tuple[Environment, ...] = ()

    def environment(self, name: str) -> Environment:
        """The environment called `name`, or a ManifestError listing the declared ones."""
        for env in self.environments:
            if env.name == name:
                return env
        known = ", ".join(e.name for e in self.environments) or "none declared"
        raise ManifestError(
            f"{self.root / MANIFEST_NAME}: no environment named {name!r} ({known}); "
            "add [environments.<name>] (see docs/configuration.md)"
        )

    def service(self, name: str) -> ServiceSpec:
        """The service called `name`, or a ManifestError listing the known ones."""
        for spec in self.services:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.services)
        raise ManifestError(
            f"{self.root / MANIFEST_NAME}: no service named {name!r} (known services: {known})"
        )


# Top-level tables later capabilities read; accepted here so one manifest serves all.
_TOP_KEYS = {"project", "services", "security", "environments"}
_ENVIRONMENT_KEYS = {
    "coolify_url",
    "registry",
    "registry_username",
    "secrets",
    "services",
    "deploy_timeout",
    "verify_timeout",
    "hasura",
    "observability",
    "preview",
    "notify",
}
_PREVIEW_KEYS = {"database_url", "database_env", "services"}
_PREVIEW_SERVICE_KEYS = {"health_url"}
_NOTIFY_KEYS = {"kind", "url_secret"}
NOTIFY_KINDS = ("slack", "webhook")
_OBSERVABILITY_KEYS = {"pushgateway_url", "pushgateway_auth"}
_HASURA_KEYS = {"url", "admin_secret", "application"}
_TARGET_KEYS = {"application", "tag", "health_url"}
_URL_RE = re.compile(r"^https?://[^\s/@]+(/\S*)?$")
_SECURITY_KEYS = {"fail_on", "ignore"}
_FAIL_ON = ("critical", "high", "medium", "low", "none")
_PROJECT_KEYS = {"name", "repository"}
_SERVICE_KEYS = {"kind", "path", "tasks", "database", "migrations", "dockerfile", "runbooks"}
_TASK_KEYS = {"run", "enabled", "env"}


def load_manifest(root: Path) -> Manifest:
    """Read and validate `<root>/wormhole-ci.toml`; every error names file and field."""
    root = root.resolve()
    if not root.is_dir():
        raise ManifestError(f"{root}: source directory does not exist; pass --source DIR")
    path = root / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            f"{path}: manifest not found; create it (see docs/configuration.md) "
            "or point --source at the monorepo root"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: invalid TOML: {exc}; fix the syntax") from None
    return _parse(root, path, data)


def _parse(root: Path, path: Path, data: dict[str, object]) -> Manifest:
    _reject_unknown(path, "", data, _TOP_KEYS)
    project = _table(path, "project", data.get("project", {}))
    _reject_unknown(path, "project.", project, _PROJECT_KEYS)
    name = project.get("name", _slug(root.name))
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ManifestError(
            f"{path}: project.name must be lower-case letters, digits and '-' "
            f"(at most 40), got {name!r}"
        )
    repository = project.get("repository")
    if repository is not None and (
        not isinstance(repository, str) or not re.match(r"^https?://\S+$", repository)
    ):
        raise ManifestError(
            f"{path}: project.repository must be the http(s) URL of the source repository, "
            f"got {repository!r}"
        )
    services_table = _table(path, "services", data.get("services"))
    if not services_table:
        raise ManifestError(f"{path}: no [services.<name>] tables; declare at least one service")
    services: list[ServiceSpec] = []
    for svc_name, raw in services_table.items():
        services.append(_parse_service(root, path, svc_name, raw))
    specs = tuple(services)
    names = {s.name for s in specs}
    for spec in specs:
        if spec.kind is ServiceKind.HASURA:
            _check_hasura_database(path, spec, specs, names)
    return Manifest(
        root=root,
        project=name,
        services=specs,
        repository=repository if isinstance(repository, str) else None,
        security=_parse_security(path, data),
        environments=_parse_environments(path, data.get("environments"), names),
    )


def _parse_environments(path: Path, raw: object, services: set[str]) -> tuple[Environment, ...]:
    envs = [
        _parse_environment(path, name, value, services)
        for name, value in _table(path, "environments", raw).items()
    ]
    # The specification: staging and production never share a database or an application.
    seen: dict[str, str] = {}
    for env in envs:
        var = env.secrets["database_url"]
        if var in seen:
            raise ManifestError(
                f"{path}: environments.{env.name}.secrets.database_url = {var!r} is also "
                f"{seen[var]}'s: each environment needs its own database (and its own secret)"
            )
        seen[var] = env.name
    for env in envs:
        # The preview server's role creates and drops databases: never an environment's own.
        preview_var = env.preview.database_url if env.preview else None
        if preview_var in seen:
            raise ManifestError(
                f"{path}: environments.{env.name}.preview.database_url = {preview_var!r} is "
                f"{seen[preview_var]}'s database secret: previews need their own PostgreSQL "
                "URL (a role that may create databases), never an environment's database"
            )
    apps: dict[str, str] = {}
    for env in envs:
        for target in env.targets:
            if target.application and target.application in apps:
                raise ManifestError(
                    f"{path}: environments.{env.name}.services.{target.service}.application "
                    f"{target.application!r} is also used by {apps[target.application]}; "
                    "staging and production must be different Coolify applications"
                )
            if target.application:
                apps[target.application] = f"{env.name}.{target.service}"
        engine = env.hasura.application if env.hasura else None
        if engine and engine in apps:
            raise ManifestError(
                f"{path}: environments.{env.name}.hasura.application {engine!r} is also used "
                f"by {apps[engine]}; the Hasura engine is its own Coolify application"
            )
        if engine:
            apps[engine] = f"{env.name}.hasura"
    return tuple(envs)


def _parse_environment(path: Path, name: str, raw: object, services: set[str]) -> Environment:
    where = f"environments.{name}"
    if not _NAME_RE.match(name):
        raise ManifestError(f"{path}: [{where}]: names are lower-case letters, digits and '-'")
    table = _table(path, where, raw)
    _reject_unknown(path, f"{where}.", table, _ENVIRONMENT_KEYS)
    coolify_url = table.get("coolify_url")
    if not isinstance(coolify_url, str) or not _URL_RE.match(coolify_url):
        raise ManifestError(
            f"{path}: {where}.coolify_url is required: the http(s) base URL of the Coolify "
            f"instance, e.g. http://coolify.example:8000 (got {coolify_url!r})"
        )
    registry = table.get("registry")
    if not isinstance(registry, str) or not registry or "@" in registry or "://" in registry:
        raise ManifestError(
            f"{path}: {where}.registry is required: host[:port][/namespace] the images are "
            f"pushed to and Coolify pulls from, e.g. ghcr.io/acme (got {registry!r})"
        )
    username = table.get("registry_username")
    if username is not None and not isinstance(username, str):
        raise ManifestError(f"{path}: {where}.registry_username must be a string")
    secrets = _parse_secrets(path, where, name, table.get("secrets", {}), username is not None)
    targets = _parse_targets(path, where, table.get("services"), services)
    timeouts: dict[str, float] = {}
    for key, default in (("deploy_timeout", 900.0), ("verify_timeout", 300.0)):
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ManifestError(f"{path}: {where}.{key} must be a positive number of seconds")
        timeouts[key] = float(value)
    return Environment(
        name=name,
        coolify_url=coolify_url.rstrip("/"),
        registry=registry.rstrip("/"),
        registry_username=username if isinstance(username, str) else None,
        secrets=secrets,
        targets=tuple(targets),
        hasura=_parse_hasura(path, where, name, table.get("hasura")),
        observability=_parse_observability(path, where, name, table.get("observability")),
        preview=_parse_preview(path, where, name, table.get("preview"), targets),
        notify=_parse_notify(path, where, name, table.get("notify")),
        **timeouts,
    )


def _parse_hasura(path: Path, where: str, env_name: str, raw: object) -> HasuraTarget | None:
    if raw is None:
        return None
    where = f"{where}.hasura"
    table = _table(path, where, raw)
    _reject_unknown(path, f"{where}.", table, _HASURA_KEYS)
    url = table.get("url")
    if not isinstance(url, str) or not _URL_RE.match(url):
        raise ManifestError(
            f"{path}: {where}.url is required: the http(s) base URL of the environment's "
            f"Hasura engine, e.g. https://graphql.example (got {url!r})"
        )
    var = table.get("admin_secret")
    if not isinstance(var, str) or not _ENV_RE.match(var):
        raise ManifestError(
            f"{path}: {where}.admin_secret must name the environment variable holding the "
            f'admin secret (e.g. admin_secret = "{env_name.upper()}_HASURA_ADMIN_SECRET"); '
            "secrets never go in the manifest"
        )
    application = table.get("application")
    if application is not None and (not isinstance(application, str) or not application):
        raise ManifestError(
            f"{path}: {where}.application must be the Coolify application UUID of the engine"
        )
    return HasuraTarget(
        url=url.rstrip("/"),
        admin_secret=var,
        application=application if isinstance(application, str) else None,
    )


def _parse_observability(
    path: Path, where: str, env_name: str, raw: object
) -> ObservabilityTarget | None:
    if raw is None:
        return None
    where = f"{where}.observability"
    table = _table(path, where, raw)
    _reject_unknown(path, f"{where}.", table, _OBSERVABILITY_KEYS)
    url = table.get("pushgateway_url")
    if isinstance(url, str) and "@" in url:  # never echoed: it may hold a password
        raise ManifestError(
            f"{path}: {where}.pushgateway_url must not carry credentials; name the variable "
            "holding them with pushgateway_auth"
        )
    if not isinstance(url, str) or not _URL_RE.match(url):
        raise ManifestError(
            f"{path}: {where}.pushgateway_url is required: the http(s) base URL of the "
            f"environment's Prometheus Pushgateway, e.g. http://pushgateway.example:9091 "
            f"(got {url!r})"
        )
    var = table.get("pushgateway_auth")
    if var is not None and (not isinstance(var, str) or not _ENV_RE.match(var)):
        raise ManifestError(
            f"{path}: {where}.pushgateway_auth must name the environment variable holding "
            f'user:password or a bearer token (e.g. pushgateway_auth = "{env_name.upper()}_'
            'PUSHGATEWAY_AUTH"); secrets never go in the manifest'
        )
    return ObservabilityTarget(
        pushgateway_url=url.rstrip("/"),
        pushgateway_auth=var if isinstance(var, str) else None,
    )


def _parse_preview(
    path: Path, where: str, env_name: str, raw: object, targets: tuple[DeployTarget, ...]
) -> PreviewTarget | None:
    if raw is None:
        return None
    where = f"{where}.preview"
    table = _table(path, where, raw)
    _reject_unknown(path, f"{where}.", table, _PREVIEW_KEYS)
    var = table.get("database_url")
    if not isinstance(var, str) or not _ENV_RE.match(var):
        raise ManifestError(
            f"{path}: {where}.database_url must name the environment variable holding the "
            f'preview PostgreSQL URL (e.g. database_url = "{env_name.upper()}_PREVIEW_'
            'DATABASE_URL"); secrets never go in the manifest'
        )
    key = table.get("database_env", "DATABASE_URL")
    if not isinstance(key, str) or not _ENV_RE.match(key):
        raise ManifestError(
            f"{path}: {where}.database_env must be the environment variable name the apps "
            'read their database URL from (e.g. "DATABASE_URL")'
        )
    by_application = {t.service: t for t in targets if t.application}
    services: dict[str, str] = {}
    for service, value in _table(path, f"{where}.services", table.get("services")).items():
        swhere = f"{where}.services.{service}"
        if service not in by_application:
            # Coolify deploys a preview by application uuid only ("tag or pr, not both").
            raise ManifestError(
                f"{path}: [{swhere}]: {service!r} is not deployed by application uuid in "
                f"[environments.{env_name}.services]; previews need its application uuid"
            )
        entry = _table(path, swhere, value)
        _reject_unknown(path, f"{swhere}.", entry, _PREVIEW_SERVICE_KEYS)
        url = entry.get("health_url")
        if not isinstance(url, str) or "{pr}" not in url or not _URL_RE.match(url):
            raise ManifestError(
                f"{path}: {swhere}.health_url is required: the preview's http(s) /healthz URL "
                f"with {{pr}} for the pull request number, e.g. "
                f'"https://{{pr}}.preview.example/healthz" (got {url!r})'
            )
        services[service] = url
    if not services:
        raise ManifestError(
            f"{path}: {where}: no [{where}.services.<name>] tables; declare which apps get a preview"
        )
    return PreviewTarget(database_url=var, services=services, database_env=key)


def _parse_notify(path: Path, where: str, env_name: str, raw: object) -> NotifyTarget | None:
    if raw is None:
        return None
    where = f"{where}.notify"
    table = _table(path, where, raw)
    _reject_unknown(path, f"{where}.", table, _NOTIFY_KEYS)
    kind = table.get("kind")
    if kind not in NOTIFY_KINDS:
        raise ManifestError(
            f"{path}: {where}.kind must be one of {', '.join(NOTIFY_KINDS)} (got {kind!r})"
        )
    var = table.get("url_secret")
    if not isinstance(var, str) or not _ENV_RE.match(var):
        raise ManifestError(
            f"{path}: {where}.url_secret must name the environment variable holding the "
            f'webhook URL (e.g. url_secret = "{env_name.upper()}_NOTIFY_URL"); a webhook URL '
            "is a credential and never goes in the manifest"
        )
    return NotifyTarget(kind=str(kind), url_secret=var)


def _parse_secrets(
    path: Path, where: str, env_name: str, raw: object, has_registry_user: bool
) -> dict[str, str]:
    table = _table(path, f"{where}.secrets", raw)
    _reject_unknown(path, f"{where}.secrets.", table, set(SECRET_ROLES))
    secrets: dict[str, str] = {}
    for role in SECRET_ROLES:
        var = table.get(role)
        if var is None and role == "registry_password" and not has_registry_user:
            continue  # an anonymous (e.g. loopback or IP-allow-listed) registry
        if not isinstance(var, str) or not _ENV_RE.match(var):
            raise ManifestError(
                f"{path}: {where}.secrets.{role} must name the environment variable holding "
                f'it (e.g. {role} = "{env_name.upper()}_{role.upper()}"); secrets never go in '
                "the manifest"
            )
        secrets[role] = var
    return secrets


def _parse_targets(
    path: Path, where: str, raw: object, services: set[str]
) -> tuple[DeployTarget, ...]:
    targets: list[DeployTarget] = []
    for service, value in _table(path, f"{where}.services", raw).items():
        twhere = f"{where}.services.{service}"
        if service not in services:
            raise ManifestError(f"{path}: [{twhere}]: no service named {service!r}")
        target = _table(path, twhere, value)
        _reject_unknown(path, f"{twhere}.", target, _TARGET_KEYS)
        application, tag = target.get("application"), target.get("tag")
        if (application is None) == (tag is None) or not isinstance(application or tag, str):
            raise ManifestError(
                f"{path}: {twhere}: set exactly one of application (the Coolify application "
                "UUID) or tag (a Coolify tag)"
            )
        health = target.get("health_url")
        if not isinstance(health, str) or not _URL_RE.match(health):
            raise ManifestError(
                f"{path}: {twhere}.health_url is required: the public http(s) URL of the "
                f"service's /healthz, which must report the deployed SHA (got {health!r})"
            )
        targets.append(
            DeployTarget(
                service=service,
                application=application if isinstance(application, str) else None,
                tag=tag if isinstance(tag, str) else None,
                health_url=health,
            )
        )
    if not targets:
        raise ManifestError(
            f"{path}: {where}: no [{where}.services.<name>] tables; declare what is deployed"
        )
    return tuple(targets)


def _parse_security(path: Path, data: dict[str, object]) -> SecuritySettings:
    table = _table(path, "security", data.get("security", {}))
    _reject_unknown(path, "security.", table, _SECURITY_KEYS)
    fail_on = table.get("fail_on", "high")
    if fail_on not in _FAIL_ON:
        raise ManifestError(
            f"{path}: security.fail_on must be one of {', '.join(_FAIL_ON)}, got {fail_on!r}"
        )
    return SecuritySettings(fail_on=str(fail_on), ignore=parse_ignores(table.get("ignore"), path))


def _parse_service(root: Path, path: Path, name: str, raw: object) -> ServiceSpec:
    where = f"services.{name}"
    if not _NAME_RE.match(name):
        raise ManifestError(
            f"{path}: [{where}]: service names are lower-case letters, digits and '-'"
        )
    table = _table(path, where, raw)
    _reject_unknown(path, f"{where}.", table, _SERVICE_KEYS)
    rel = table.get("path", name)
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise ManifestError(
            f"{path}: {where}.path must be a relative path inside the monorepo, got {rel!r}"
        )
    directory = root / rel
    if not directory.is_dir():
        raise ManifestError(
            f"{path}: {where}.path: directory {rel!r} does not exist under {root}; "
            "fix the path or remove the service"
        )
    kind_raw = table.get("kind")
    if kind_raw is None:
        kind = _infer_kind(path, where, directory)
    else:
        try:
            kind = ServiceKind(str(kind_raw))
        except ValueError:
            allowed = ", ".join(k.value for k in ServiceKind)
            raise ManifestError(
                f"{path}: {where}.kind: unknown kind {kind_raw!r}; use one of {allowed}"
            ) from None
    database = table.get("database")
    if database is not None and (kind is not ServiceKind.HASURA or not isinstance(database, str)):
        raise ManifestError(
            f"{path}: {where}.database is only valid for kind 'hasura' and must name a service"
        )
    migrations = table.get("migrations")
    if migrations is not None and (
        kind is not ServiceKind.HASURA
        or not isinstance(migrations, str)
        or not migrations
        or Path(migrations).is_absolute()
        or ".." in Path(migrations).parts
    ):
        raise ManifestError(
            f"{path}: {where}.migrations is only valid for kind 'hasura' and must be Hasura's "
            f"migrations directory relative to the service directory, got {migrations!r}"
        )
    dockerfile = table.get("dockerfile")
    if dockerfile is not None and (
        not isinstance(dockerfile, str)
        or not dockerfile
        or Path(dockerfile).is_absolute()
        or ".." in Path(dockerfile).parts
    ):
        raise ManifestError(
            f"{path}: {where}.dockerfile must be a path relative to the service directory, "
            f"got {dockerfile!r}"
        )
    runbooks = _parse_runbooks(path, where, kind, table.get("runbooks"))
    tasks = {
        task: _parse_task(path, f"{where}.tasks.{task}", value)
        for task, value in _table(path, f"{where}.tasks", table.get("tasks", {})).items()
    }
    return ServiceSpec(
        name=name,
        kind=kind,
        path=Path(rel).as_posix(),
        tasks=tasks,
        database=database if isinstance(database, str) else None,
        migrations=Path(migrations).as_posix() if isinstance(migrations, str) else None,
        dockerfile=dockerfile if isinstance(dockerfile, str) else None,
        runbooks=runbooks,
    )


def _parse_runbooks(path: Path, where: str, kind: ServiceKind, raw: object) -> str | None:
    """A delivery service's runbooks directory; its existence is the validation's to report
    (the Dagger planner sees only the planner's files, not the runbooks)."""
    if raw is not None and kind is not ServiceKind.DELIVERY:
        raise ManifestError(
            f"{path}: {where}.runbooks is only valid for kind 'delivery'; remove it or set "
            'kind = "delivery"'
        )
    if kind is not ServiceKind.DELIVERY:
        return None
    value = DEFAULT_RUNBOOKS if raw is None else raw
    if (
        not isinstance(value, str)
        or not value
        or Path(value).is_absolute()
        or ".." in Path(value).parts
    ):
        raise ManifestError(
            f"{path}: {where}.runbooks must be a directory relative to the monorepo root "
            f'(default "{DEFAULT_RUNBOOKS}"), got {value!r}'
        )
    return Path(value).as_posix()


def _parse_task(path: Path, where: str, value: object) -> TaskOverride:
    if not _NAME_RE.match(where.rsplit(".", 1)[-1]):
        raise ManifestError(f"{path}: [{where}]: task names are lower-case letters, digits and '-'")
    if value is False:
        return TaskOverride(enabled=False)
    if isinstance(value, str) or as_list(value) is not None:
        return TaskOverride(run=_argv(path, where, value))
    if as_dict(value) is not None:
        table = _table(path, where, value)
        _reject_unknown(path, f"{where}.", table, _TASK_KEYS)
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ManifestError(f"{path}: {where}.enabled must be true or false")
        run = table.get("run")
        env = _table(path, f"{where}.env", table.get("env", {}))
        pairs: list[tuple[str, str]] = []
        for key, val in env.items():
            if not _ENV_RE.match(key) or not isinstance(val, str):
                raise ManifestError(
                    f"{path}: {where}.env.{key}: names are identifiers and values strings"
                )
            pairs.append((key, val))
        return TaskOverride(
            enabled=enabled,
            run=None if run is None else _argv(path, f"{where}.run", run),
            env=tuple(sorted(pairs)),
        )
    raise ManifestError(
        f"{path}: {where}: expected a command (string or list), false, or a table "
        "with run/enabled/env"
    )


def _argv(path: Path, where: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ManifestError(f"{path}: {where}: cannot split command: {exc}") from None
    elif (items := as_str_list(value)) is not None:
        argv = items
    else:
        raise ManifestError(f"{path}: {where}: a command is a string or a list of strings")
    if not argv:
        raise ManifestError(f"{path}: {where}: empty command; use false to switch a task off")
    return tuple(argv)


def _infer_kind(path: Path, where: str, directory: Path) -> ServiceKind:
    if any((directory / f"nuxt.config.{ext}").exists() for ext in ("ts", "js", "mjs")):
        return ServiceKind.NUXT
    if (directory / "package.json").exists():
        return ServiceKind.NODE
    if (directory / "pyproject.toml").exists():
        return ServiceKind.PYTHON
    if (directory / "config.yaml").exists() and (directory / "metadata").is_dir():
        return ServiceKind.HASURA
    if (directory / "observability").is_dir() or (directory / "coolify").is_dir():
        return ServiceKind.DELIVERY
    raise ManifestError(
        f"{path}: {where}: cannot infer the kind of {directory.name!r} (no package.json, "
        "pyproject.toml, Hasura config.yaml, observability/ or coolify/); set kind explicitly"
    )


def _check_hasura_database(
    path: Path, spec: ServiceSpec, specs: tuple[ServiceSpec, ...], names: set[str]
) -> None:
    where = f"services.{spec.name}.database"
    if spec.database is not None and spec.migrations is not None:
        raise ManifestError(
            f"{path}: services.{spec.name}: both `database` and `migrations` are set; "
            'the schema comes from exactly one: keep `database = "<service>"` (that '
            "service's Prisma migrations) or `migrations = \"<dir>\"` (Hasura's own "
            "migrations), and remove the other"
        )
    if spec.migrations is not None:
        return
    if spec.database is None:
        node = [s.name for s in specs if s.kind is ServiceKind.NODE]
        hint = f" (e.g. database = {node[0]!r})" if node else ""
        raise ManifestError(
            f"{path}: services.{spec.name}: neither `database` nor `migrations` is set; "
            'name the schema source: `database = "<service>"` (the service whose Prisma '
            f'migrations define the database{hint}) or `migrations = "<dir>"` (Hasura\'s '
            'own migrations, e.g. migrations = "migrations")'
        )
    if spec.database not in names:
        raise ManifestError(f"{path}: {where}: no service named {spec.database!r}")


def _slug(text: str) -> str:
    """A folder name made into a valid project name (the default when none is set)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:40]
    return slug if slug[:1].isalpha() else f"p-{slug}"[:40]


def _table(path: Path, where: str, value: object) -> dict[str, object]:
    if value is None:
        return {}
    table = as_dict(value)
    if table is None:
        raise ManifestError(f"{path}: [{where}] must be a table")
    return table


def _reject_unknown(
    path: Path, prefix: str, table: Mapping[str, object], allowed: set[str]
) -> None:
    for key in table:
        if key not in allowed:
            options = ", ".join(sorted(allowed))
            raise ManifestError(f"{path}: unknown key {prefix}{key}; allowed here: {options}")
