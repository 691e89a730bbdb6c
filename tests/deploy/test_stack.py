"""The Coolify stack (examples/wormhole/deploy/coolify/) and the example's local compose: both validate against the
compose-spec schema (check-jsonschema's vendored copy), every service of the stack is healthy,
bounded and private, its secrets are references, its variables are documented per environment,
and every variable an example service reads is in that service's .env.example and the other way
round (docs/infrastructure.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import EXAMPLE
from tests.deploy.stack_files import (
    MAGIC,
    UnsetVariableError,
    env_entries,
    environment,
    interpolate,
    literal_secrets,
    load_yaml,
    node_reads,
    python_reads,
    variables,
)
from wormhole_ci.containers import HASURA_ENGINE_IMAGE
from wormhole_ci.delivery.stack import secret_variables, service_problems, stack_variables
from wormhole_ci.images.spec import image_specs
from wormhole_ci.manifest import load_manifest

STACK_DIR = EXAMPLE / "deploy" / "coolify"
STACK = STACK_DIR / "docker-compose.yml"
ENVIRONMENTS = ("staging", "production")
LOCAL = EXAMPLE / "docker-compose.yml"
LOCAL_ENV = EXAMPLE / ".env.example"
OBSERVABILITY = EXAMPLE / "deploy" / "observability"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

APPLICATIONS = frozenset({"web", "api", "hasura", "runner", "workers"})
DATA = frozenset({"postgres", "mongo", "redis"})
MONITORING = frozenset(
    {"prometheus", "alertmanager", "pushgateway", "postgres-exporter", "redis-exporter", "loki"}
)
LOG_SHIPPERS = frozenset({"vector", "promtail"})
STATEFUL = frozenset(
    {"postgres", "mongo", "redis", "prometheus", "alertmanager", "loki", "grafana"}
)
HOST_PATHS = frozenset({"/proc", "/sys", "/", "/var/run/docker.sock"})
"""Absolute bind sources allowed: node-exporter's view of the host, the log shipper's Docker API."""
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})

# Which stack services run each example service's code, and how its source is read.
STACK_SERVICES: dict[str, tuple[str, ...]] = {
    "api": ("api",),
    "web": ("web",),
    "runner": ("runner", "workers"),
    "hasura": ("hasura",),
}
READERS: dict[str, tuple[str, Callable[[Path], dict[str, set[str]]]]] = {
    "api": ("api", node_reads),
    "web": ("web", node_reads),
    "runner": ("runner/src", python_reads),
}
FRAMEWORK: dict[str, dict[str, str]] = {
    "web": {
        "PORT": "Nitro's node-server listens on it (default 3000)",
        "HOST": "Nitro's node-server binds it (default all interfaces)",
        "NUXT_TELEMETRY_DISABLED": "nuxi (dev, build) reads it",
    },
}
"""Variables a service's .env.example documents that its framework reads, not its own source."""
INTERNAL: dict[str, dict[str, str]] = {
    "api": {"CHECKPOINT_DISABLE": "prisma.config.ts sets it for the Prisma CLI (no update check)"},
}
"""Variables the source touches that are not settings of the service."""
PENDING: dict[str, dict[str, str]] = {}
"""Set by the stack and documented before the source reads them; an entry must go once it does."""


# ---------------------------------------------------------------- the files, read once


@cache
def stack_text() -> str:
    return STACK.read_text()


@cache
def stack_doc() -> dict[str, Any]:
    """The stack as written (not interpolated); read once, never modified by a test."""
    return load_yaml(STACK)


@cache
def env_file(name: str) -> Path:
    return STACK_DIR / f"{name}.env.example"


def magic_value(name: str, environment_name: str) -> str:
    """What Coolify would put in a magic variable (a domain, or a generated credential)."""
    if name.startswith(("SERVICE_URL_", "SERVICE_FQDN_")):
        service = name.split("_", 2)[2].lower()
        return f"https://{service}.{environment_name}.example.test"
    return "generated0by0coolify"


@cache
def rendered_text(environment_name: str) -> str:
    """The stack as Coolify hands it to Compose for `environment_name`: the env example's values,
    and stand-ins for what Coolify generates."""
    values = {
        entry.name: entry.value
        for entry in env_entries(env_file(environment_name)).values()
        if not entry.commented
    }
    values |= {
        name: magic_value(name, environment_name)
        for name in variables(stack_text())
        if MAGIC.match(name)
    }
    return interpolate(stack_text(), values)


@cache
def rendered(environment_name: str) -> dict[str, Any]:
    data = yaml.safe_load(rendered_text(environment_name))
    assert isinstance(data, dict)
    return data  # pyright: ignore[reportUnknownVariableType]


def services(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return document["services"]


# ---------------------------------------------------------------- validation


@pytest.fixture(scope="module")
def compose_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Both compose files as written, and the stack as each environment renders it."""
    out = tmp_path_factory.mktemp("rendered")
    files = [LOCAL, STACK]
    for name in ENVIRONMENTS:
        path = out / f"coolify-{name}.yml"
        path.write_text(rendered_text(name))
        files.append(path)
    return files


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    assert CHECK_JSONSCHEMA.is_file(), f"{CHECK_JSONSCHEMA} is missing: run `make setup`"
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", *map(str, files)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_compose_files_validate_against_the_compose_spec(compose_files: list[Path]) -> None:
    done = check_jsonschema(*compose_files)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_validator_rejects_what_compose_would(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "services:\n  web:\n    image: x\n    healthcheck:\n      intervall: 5s\n"
        "    deploy:\n      resources:\n        limits:\n          memroy: 1G\n"
    )
    done = check_jsonschema(bad)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "bad.yml" in done.stdout + done.stderr


@pytest.mark.parametrize("environment_name", ENVIRONMENTS)
def test_the_stack_renders_with_every_required_variable_set(environment_name: str) -> None:
    document = rendered(environment_name)  # a required variable left unset raises
    assert set(services(document)) >= APPLICATIONS | DATA | MONITORING
    assert LOG_SHIPPERS & set(services(document)), "a log shipper (vector or promtail) to Loki"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}-${B:-b}-${C-c}-${D:+d}-$A-$$A", "a-b-c--a-$A"),
        ("${E:-e}|${E-e}|${E:+set}|${E+set}", "e|||set"),
        ("${A:?}", "a"),
    ],
)
def test_interpolation_follows_compose(text: str, expected: str) -> None:
    assert interpolate(text, {"A": "a", "E": ""}) == expected


def test_a_required_variable_left_unset_stops_the_render() -> None:
    with pytest.raises(UnsetVariableError, match="IMAGE_TAG"):
        interpolate(stack_text(), {"REGISTRY": "r"})


# ---------------------------------------------------------------- shape of every service


@pytest.mark.parametrize("environment_name", ENVIRONMENTS)
def test_every_service_is_healthchecked_limited_restarted_and_log_bounded(
    environment_name: str,
) -> None:
    # image, healthcheck and limits as validate-delivery checks them, on the rendered stack
    problems = service_problems(rendered(environment_name), environment_name)
    for name, service in services(rendered(environment_name)).items():
        limits = (service.get("deploy") or {}).get("resources", {}).get("limits", {})
        if float(limits.get("cpus") or 0) <= 0:
            problems.append(f"{name}: no CPU limit")
        if memory_bytes(str(limits.get("memory") or "0")) < 32 * 2**20:
            problems.append(f"{name}: no memory limit (or under 32M)")
        if service.get("restart") not in {"unless-stopped", "always"}:
            problems.append(f"{name}: restart is {service.get('restart')!r}")
        logging = service.get("logging") or {}
        if logging.get("driver") != "json-file" or "max-size" not in (logging.get("options") or {}):
            problems.append(f"{name}: logs are not rotated (json-file with max-size)")
    assert not problems, problems


def memory_bytes(value: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgKMG]?)[bB]?", value.strip())
    assert match, f"unreadable size {value!r}"
    return int(float(match[1]) * 1024 ** " kmg".index(match[2].lower() or " "))


def published(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(service, host address) of every published port, in either syntax."""
    found: list[tuple[str, str]] = []
    for name, service in services(document).items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                found.append((name, str(port.get("host_ip", "0.0.0.0"))))
            else:
                parts = str(port).rsplit(":", 2)
                found.append((name, parts[0] if len(parts) == 3 else "0.0.0.0"))
    return found


@pytest.mark.parametrize("source", ["staging", "production", "local"])
def test_nothing_is_published_beyond_loopback(source: str) -> None:
    document = load_yaml(LOCAL) if source == "local" else rendered(source)
    ports = published(document)
    assert all(address == "127.0.0.1" for _, address in ports), ports
    if source != "local":  # public traffic goes through Coolify's proxy only
        assert {name for name, _ in ports} == {"postgres", "pushgateway"}, ports


def test_coolify_owns_the_names_and_there_is_one_container_per_service() -> None:
    document = stack_doc()
    assert "name" not in document, "Coolify names the project after the resource UUID"
    for name, service in services(document).items():
        assert "container_name" not in service, name
        assert "scale" not in service, name
        # Coolify sets container_name, which Compose refuses with replicas > 1 (coolify#3497)
        assert (service.get("deploy") or {}).get("replicas", 1) == 1, name
    for volume, spec in (document.get("volumes") or {}).items():
        assert not (spec or {}).get("name") and not (spec or {}).get("external"), volume


def test_named_volumes_are_declared_used_and_hold_every_state() -> None:
    document = stack_doc()
    declared = set(document.get("volumes") or {})
    used: dict[str, set[str]] = {}
    for name, service in services(document).items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if not source.startswith(("/", ".")):
                used.setdefault(source, set()).add(name)
    assert set(used) == declared
    with_state = {service for services_ in used.values() for service in services_}
    assert with_state >= STATEFUL, sorted(STATEFUL - with_state)


def test_dependencies_exist_and_wait_for_health() -> None:
    all_services = services(stack_doc())
    for name, service in all_services.items():
        for target, condition in (service.get("depends_on") or {}).items():
            assert target in all_services, f"{name} depends on unknown {target}"
            assert condition == {"condition": "service_healthy"}, f"{name} -> {target}"
            assert all_services[target].get("healthcheck"), target


def test_file_mounted_secrets_are_declared_and_come_from_the_environment() -> None:
    document = stack_doc()
    declared = document.get("secrets") or {}
    for name, service in services(document).items():
        for secret in service.get("secrets") or []:
            source = secret["source"] if isinstance(secret, dict) else str(secret)
            assert source in declared, f"{name} uses undeclared secret {source}"
    assert all(set(spec) == {"environment"} for spec in declared.values()), declared
    # where deploy/observability/alertmanager/alertmanager.yml's *_file settings read them
    targets = {s["target"] for s in services(document)["alertmanager"]["secrets"]}
    assert targets == {f"/etc/alertmanager/secrets/{name}" for name in declared}


# ---------------------------------------------------------------- images


def test_hasura_runs_the_engine_the_tool_validates_against() -> None:
    assert services(stack_doc())["hasura"]["image"] == HASURA_ENGINE_IMAGE


def test_application_images_are_the_ones_wormhole_ci_publishes() -> None:
    specs = image_specs(load_manifest(EXAMPLE))
    stack = services(stack_doc())
    expected = {
        spec.service: f"${{REGISTRY:?}}/{spec.repository}:${{IMAGE_TAG:?}}" for spec in specs
    }
    assert {name: stack[name]["image"] for name in expected} == expected
    assert stack["workers"]["image"] == expected["runner"]
    assert stack["workers"]["command"][:3] == ["python", "-m", "runner.main"]
    ours = {name for name, s in stack.items() if str(s["image"]).startswith("${REGISTRY")}
    assert ours == {*expected, "workers"}


def test_other_images_are_pinned_and_the_databases_match_local_development() -> None:
    stack = services(stack_doc())
    for name, service in stack.items():
        image = str(service["image"])
        if not image.startswith("${REGISTRY"):
            tag = image.rpartition(":")[2]
            assert "/" not in tag and re.search(r"\d", tag) and tag != "latest", (name, image)
    local = services(load_yaml(LOCAL))
    assert {name: stack[name]["image"] for name in DATA} == {
        name: local[name]["image"] for name in DATA
    }


# ---------------------------------------------------------------- variables of the stack


@pytest.mark.parametrize("environment_name", ENVIRONMENTS)
def test_every_stack_variable_is_documented_per_environment(environment_name: str) -> None:
    entries = env_entries(env_file(environment_name))
    used = stack_variables(stack_text(), stack_doc())
    assert sorted(used - set(entries)) == [], "used by the stack, missing from the env example"
    assert sorted(set(entries) - used) == [], "in the env example, unused by the stack"
    for name, entry in entries.items():
        if MAGIC.match(name):
            assert entry.commented and not entry.value, f"{name} is generated by Coolify"
        else:
            assert not entry.commented, f"{name}: the operator sets it; give its value"
    for name, op in variables(stack_text()).items():
        if op == ":?":
            assert entries[name].value, f"{name} is required by the stack"
    for name in secret_variables(stack_doc()):
        assert entries[name].value == "", f"{name} is a secret: set in Coolify only"


def test_environments_set_the_same_variables_to_separate_data() -> None:
    staging, production = (env_entries(env_file(n)) for n in ENVIRONMENTS)
    assert list(staging) == list(production)
    assert staging["WORMHOLE_ENVIRONMENT"].value == "staging"
    assert production["WORMHOLE_ENVIRONMENT"].value == "production"
    # one Coolify host may carry both: databases and loopback ports must not collide
    for name in ("POSTGRES_DB", "MONGO_DB", "POSTGRES_HOST_PORT", "PUSHGATEWAY_HOST_PORT"):
        assert staging[name].value != production[name].value, name
    bigger = [n for n in staging if n.endswith("_MEMORY")]
    assert all(
        memory_bytes(production[n].value) >= memory_bytes(staging[n].value) for n in bigger
    ), "production is never smaller than staging"


@pytest.mark.parametrize("environment_name", ENVIRONMENTS)
def test_each_environment_pulls_from_the_registry_its_release_publishes_to(
    environment_name: str,
) -> None:
    registry = load_manifest(EXAMPLE).environment(environment_name).registry
    assert env_entries(env_file(environment_name))["REGISTRY"].value == registry


@pytest.mark.parametrize("environment_name", ENVIRONMENTS)
def test_memory_settings_fit_inside_their_limits(environment_name: str) -> None:
    entries = {e.name: e.value for e in env_entries(env_file(environment_name)).values()}
    assert memory_bytes(entries["REDIS_MAXMEMORY"]) < memory_bytes(entries["REDIS_MEMORY"])
    assert float(entries["MONGO_CACHE_GB"]) * 2**30 < memory_bytes(entries["MONGO_MEMORY"])


def test_no_literal_secret_in_the_stack_or_its_env_examples() -> None:
    for path in (STACK, *(env_file(n) for n in ENVIRONMENTS)):
        assert literal_secrets(path.read_text()) == [], path


def test_the_secret_detector_catches_literals_and_passes_references() -> None:
    token = "gh" + "p_" + "a1B2" * 9
    bad = [
        "      POSTGRES_PASSWORD: hunter2",
        "      DATABASE_URL: postgresql://wormhole:hunter2@postgres:5432/wormhole",
        "HASURA_GRAPHQL_ADMIN_SECRET=s3cr3t-value",
        "# SMTP_AUTH_PASSWORD=forgotten-here",
        "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T000/B000/XXXX",
        f"      GITHUB: {token}",
    ]
    good = [
        "      POSTGRES_PASSWORD: ${SERVICE_PASSWORD_POSTGRES}",
        "      DATABASE_URL: postgresql://${SERVICE_USER_POSTGRES}:${SERVICE_PASSWORD_POSTGRES}@postgres:5432/x",
        "      REDIS_URL: redis://:${SERVICE_PASSWORD_REDIS}@redis:6379/0",
        "SMTP_AUTH_PASSWORD=",
        "# SERVICE_PASSWORD_64_HASURA=",
        "      secrets:",
        "      - smtp_auth_password",
    ]
    assert [len(literal_secrets(line)) > 0 for line in bad] == [True] * len(bad)
    assert [literal_secrets(line) for line in good] == [[]] * len(good)


# ---------------------------------------------------------------- variables of the services


@cache
def reads(app: str) -> dict[str, set[str]]:
    subdir, reader = READERS[app]
    return reader(EXAMPLE / subdir)


@pytest.mark.parametrize("app", sorted(READERS))
def test_env_example_lists_exactly_what_the_service_reads(app: str) -> None:
    found = reads(app)
    assert found, f"{app}: the scan found no environment variable at all"
    internal, pending = INTERNAL.get(app, {}), PENDING.get(app, {})
    assert set(internal) <= set(found), f"{app}: stale INTERNAL entries"
    now_read = sorted(set(pending) & set(found))
    assert not now_read, f"{app} reads {now_read} now: drop them from PENDING in this test"
    documented = set(env_entries(EXAMPLE / app / ".env.example"))
    read = set(found) - set(internal)
    missing = {name: sorted(found[name]) for name in read - documented}
    assert not missing, f"{app}/.env.example lacks variables its source reads: {missing}"
    unread = documented - read - set(FRAMEWORK.get(app, {})) - set(pending)
    assert not unread, f"{app}/.env.example lists variables nothing reads: {sorted(unread)}"


@pytest.mark.parametrize("app", sorted(STACK_SERVICES))
def test_the_stack_gives_each_service_only_documented_variables(app: str) -> None:
    documented = env_entries(EXAMPLE / app / ".env.example")
    stack = services(stack_doc())
    for name in STACK_SERVICES[app]:
        given = {k for k in environment(stack[name]) if not MAGIC.match(k)}
        assert sorted(given - set(documented)) == [], f"stack service {name}"
        if app == "hasura":  # the engine's settings: all of them, in both places
            assert given == set(documented)
        # what points at localhost in development must point into the stack here
        urls = {n for n, e in documented.items() if "://" in e.value and not e.commented}
        assert sorted(urls - given) == [], f"stack service {name} must set these"
        for variable in urls:
            value = interpolate(str(environment(stack[name])[variable]), _stand_ins())
            assert urlsplit(value).hostname not in LOOPBACK, (name, variable)


@cache
def _stand_ins() -> dict[str, str]:
    return dict.fromkeys(variables(stack_text()), "x")


def env_examples() -> list[Path]:
    return sorted([*EXAMPLE.glob("*/.env.example"), LOCAL_ENV])


def _relative(path: Path) -> str:
    return str(path.relative_to(EXAMPLE))


@pytest.mark.parametrize("path", env_examples(), ids=_relative)
def test_local_env_examples_point_at_loopback(path: Path) -> None:
    for entry in env_entries(path).values():
        if "://" in entry.value:
            assert urlsplit(entry.value).hostname in LOOPBACK, f"{path}: {entry.name}"


def test_local_urls_reach_the_local_compose() -> None:
    local = services(load_yaml(LOCAL))
    defaults = {e.name: e.value for e in env_entries(LOCAL_ENV).values()}
    compose_env = {
        name: {k: interpolate(v or "", defaults) for k, v in environment(s).items()}
        for name, s in local.items()
    }
    host_ports = {
        name: {int(str(p).rsplit(":", 2)[1]) for p in s.get("ports") or []}
        for name, s in local.items()
    }
    schemes = {"postgresql": "postgres", "redis": "redis", "mongodb": "mongo"}
    checked = 0
    for path in EXAMPLE.glob("*/.env.example"):
        for entry in env_entries(path).values():
            url = urlsplit(entry.value)
            if url.scheme not in schemes:
                continue
            service = schemes[url.scheme]
            assert url.port in host_ports[service], f"{path}: {entry.name} port {url.port}"
            database = url.path.lstrip("/")
            if service == "postgres":
                pg = compose_env["postgres"]
                assert (url.username, url.password, database) == (
                    pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"],
                ), f"{path}: {entry.name}"  # fmt: skip
            if service == "mongo":
                assert database == compose_env["mongo"]["MONGO_INITDB_DATABASE"], entry.name
            checked += 1
    assert checked >= 4


def test_local_compose_variables_are_documented() -> None:
    assert set(variables(LOCAL.read_text())) == set(env_entries(LOCAL_ENV))


# ---------------------------------------------------------------- the observability files


def observability_or_skip() -> None:
    if not OBSERVABILITY.is_dir():
        pytest.skip(f"{OBSERVABILITY} is not in this tree yet (issue 15 items 2 and 4 write it)")


def test_bind_mounts_are_repository_files_or_allowed_host_paths() -> None:
    problems: list[str] = []
    for name, service in services(stack_doc()).items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("/"):
                if source not in HOST_PATHS:
                    problems.append(f"{name}: host path {source}")
            elif source.startswith("."):
                # relative to the monorepo root: how Coolify resolves them (Base Directory "/")
                if not source.startswith(("./deploy/observability/", "./deploy/coolify/")):
                    problems.append(
                        f"{name}: {source} outside deploy/observability/, deploy/coolify/"
                    )
                elif not (EXAMPLE / source).exists() and (
                    OBSERVABILITY.is_dir() or source.startswith("./deploy/coolify/")
                ):
                    problems.append(f"{name}: {source} does not exist")
    assert not problems, problems


def test_prometheus_scrapes_services_of_the_stack() -> None:
    observability_or_skip()
    config = load_yaml(OBSERVABILITY / "prometheus" / "prometheus.yml")
    stack = set(services(stack_doc()))
    targets = [
        target
        for job in config.get("scrape_configs") or []
        for static in job.get("static_configs") or []
        for target in static.get("targets") or []
    ]
    hosts = {str(t).rsplit(":", 1)[0] for t in targets} - {"localhost", "127.0.0.1"}
    assert hosts, "no static target"
    assert sorted(hosts - stack) == []
