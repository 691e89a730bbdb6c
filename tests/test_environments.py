"""`[environments.<name>]` in wormhole-ci.toml: parsed from the example, validated with fixes."""

from __future__ import annotations

from pathlib import Path

import pytest

from wormhole_ci.errors import ManifestError
from wormhole_ci.manifest import ObservabilityTarget, load_manifest


def test_the_examples_staging_and_production(example: Path) -> None:
    manifest = load_manifest(example)
    staging, production = manifest.environment("staging"), manifest.environment("production")
    assert staging.coolify_url == "http://192.168.1.66:8000"
    assert staging.registry == "ghcr.io/wormhole-platform"
    assert staging.secrets["database_url"] != production.secrets["database_url"]
    assert [t.service for t in staging.targets] == ["api", "web", "runner"]
    assert {t.application for t in staging.targets}.isdisjoint(
        t.application for t in production.targets
    )
    assert all(t.health_url.endswith("/healthz") for t in (*staging.targets, *production.targets))
    # each environment's own Hasura engine, its admin secret named, never written
    assert staging.hasura is not None and production.hasura is not None
    assert staging.hasura.url == "http://192.168.1.66:8000/staging/hasura"
    assert production.hasura.url == "http://192.168.1.66:8000/hasura"
    assert staging.hasura.admin_secret == "STAGING_HASURA_ADMIN_SECRET"
    assert production.hasura.admin_secret == "PRODUCTION_HASURA_ADMIN_SECRET"
    with pytest.raises(ManifestError, match=r"no environment named 'qa' \(staging, production\)"):
        manifest.environment("qa")


BASE = """
[services.api]
kind = "node"
[environments.staging]
coolify_url = "http://127.0.0.1:8000"
registry = "127.0.0.1:5000"
secrets = { coolify_token = "T", database_url = "STAGING_DB" }
[environments.staging.services.api]
application = "app-1"
health_url = "http://127.0.0.1:3000/healthz"
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('coolify_url = "http://127.0.0.1:8000"', ""),
            r"environments\.staging\.coolify_url is required",
        ),
        (
            ('coolify_url = "http://127.0.0.1:8000"', 'coolify_url = "192.168.1.66:8000"'),
            r"coolify_url is required: the http\(s\) base URL",
        ),
        (
            ('registry = "127.0.0.1:5000"', 'registry = "https://user:pw@r.example"'),
            r"environments\.staging\.registry is required",
        ),
        (
            ('database_url = "STAGING_DB"', 'database_url = "postgres://u:p@h/db"'),
            r"secrets\.database_url must name the environment variable",
        ),
        (
            ('application = "app-1"', 'application = "app-1"\ntag = "api"'),
            r"set exactly one of application .* or tag",
        ),
        (
            ('health_url = "http://127.0.0.1:3000/healthz"', ""),
            r"services\.api\.health_url is required",
        ),
        (
            ("[environments.staging.services.api]", "[environments.staging.services.db]"),
            r"\[environments\.staging\.services\.db\]: no service named 'db'",
        ),
        (
            ('registry = "127.0.0.1:5000"', 'registry = "127.0.0.1:5000"\nregion = "eu"'),
            r"unknown key environments\.staging\.region",
        ),
    ],
)
def test_bad_environments_name_the_field_and_the_fix(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "wormhole-ci.toml").write_text(BASE.replace(*change))
    with pytest.raises(ManifestError, match=message):
        load_manifest(tmp_path)


def test_environments_never_share_a_database_or_an_application(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    twin = BASE.split("[environments.staging]")[1].replace("STAGING_DB", "PROD_DB")
    (tmp_path / "wormhole-ci.toml").write_text(
        BASE + "[environments.production]" + twin.replace("staging", "production")
    )
    with pytest.raises(ManifestError, match=r"application 'app-1' is also used by staging\.api"):
        load_manifest(tmp_path)
    shared_db = (
        BASE
        + "[environments.production]"
        + twin.replace("staging", "production")
        .replace("PROD_DB", "STAGING_DB")
        .replace("app-1", "app-2")
    )
    (tmp_path / "wormhole-ci.toml").write_text(shared_db)
    with pytest.raises(
        ManifestError, match=r"secrets\.database_url = 'STAGING_DB' is also staging's"
    ):
        load_manifest(tmp_path)


def test_release_secrets_come_from_the_named_variables(example: Path) -> None:
    from wormhole_ci.errors import MigrateError, WormholeCiError
    from wormhole_ci.release.native import environment_secrets

    env = load_manifest(example).environment("staging")
    with pytest.raises(WormholeCiError) as info:
        environment_secrets(env, {"COOLIFY_TOKEN": "t0ken-value"})
    assert (
        "missing secrets: database_url ($STAGING_DATABASE_URL), registry_password ($REGISTRY_PASSWORD), "
        "hasura admin_secret ($STAGING_HASURA_ADMIN_SECRET)" in str(info.value)
    )
    assert "t0ken-value" not in str(info.value)
    values = {
        "COOLIFY_TOKEN": "t",
        "REGISTRY_PASSWORD": "p",
        "STAGING_DATABASE_URL": "mysql://u:secretpw@h/db",
        "STAGING_HASURA_ADMIN_SECRET": "hasura-admin-value",
    }
    with pytest.raises(MigrateError) as bad:
        environment_secrets(env, values)
    assert "secretpw" not in str(bad.value)
    values["STAGING_DATABASE_URL"] = "postgresql://u:secretpw@db.internal:5432/wormhole"
    secrets = environment_secrets(env, values)
    assert secrets.database_url.source == "env:STAGING_DATABASE_URL"
    assert secrets.hasura_admin_secret is not None
    assert secrets.hasura_admin_secret.source == "env:STAGING_HASURA_ADMIN_SECRET"
    assert "secretpw" in secrets.values() and "secretpw" not in repr(secrets)
    assert "hasura-admin-value" in secrets.values()
    assert "hasura-admin-value" not in repr(secrets)


HASURA = '\n[environments.staging.hasura]\nurl = "http://127.0.0.1:8080"\nadmin_secret = "STAGING_HASURA"\n'


def test_hasura_engine_of_an_environment(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "wormhole-ci.toml").write_text(BASE + HASURA + 'application = "hasura-1"\n')
    env = load_manifest(tmp_path).environment("staging")
    assert env.hasura is not None
    assert (env.hasura.url, env.hasura.admin_secret, env.hasura.application) == (
        "http://127.0.0.1:8080",
        "STAGING_HASURA",
        "hasura-1",
    )
    (tmp_path / "wormhole-ci.toml").write_text(BASE)
    assert load_manifest(tmp_path).environment("staging").hasura is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('url = "http://127.0.0.1:8080"', ""), r"environments\.staging\.hasura\.url is required"),
        (
            ('url = "http://127.0.0.1:8080"', 'url = "127.0.0.1:8080"'),
            r"hasura\.url is required: the http\(s\) base URL of the environment's Hasura engine",
        ),
        (
            ('admin_secret = "STAGING_HASURA"', 'admin_secret = "hunter2 literally"'),
            r"hasura\.admin_secret must name the environment variable .*STAGING_HASURA_ADMIN_SECRET",
        ),
        (
            ('admin_secret = "STAGING_HASURA"', 'admin_secret = "S"\nconsole = true'),
            r"unknown key environments\.staging\.hasura\.console; allowed here: admin_secret, application, url",
        ),
        (
            ('admin_secret = "STAGING_HASURA"', 'admin_secret = "S"\napplication = "app-1"'),
            r"hasura\.application 'app-1' is also used by staging\.api",
        ),
    ],
)
def test_bad_hasura_tables_name_the_field_and_the_fix(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "wormhole-ci.toml").write_text(BASE + HASURA.replace(*change))
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(tmp_path)
    assert "hunter2" not in str(info.value)  # a secret written literally is never echoed


OBSERVABILITY = (
    "\n[environments.staging.observability]\n"
    'pushgateway_url = "http://127.0.0.1:9091/"\n'
    'pushgateway_auth = "STAGING_PUSHGATEWAY_AUTH"\n'
)


def test_observability_of_an_environment(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "wormhole-ci.toml").write_text(BASE + OBSERVABILITY)
    assert load_manifest(tmp_path).environment("staging").observability == ObservabilityTarget(
        "http://127.0.0.1:9091", "STAGING_PUSHGATEWAY_AUTH"
    )
    anonymous = OBSERVABILITY.replace('pushgateway_auth = "STAGING_PUSHGATEWAY_AUTH"\n', "")
    (tmp_path / "wormhole-ci.toml").write_text(BASE + anonymous)
    assert load_manifest(tmp_path).environment("staging").observability == ObservabilityTarget(
        "http://127.0.0.1:9091"
    )
    (tmp_path / "wormhole-ci.toml").write_text(BASE)
    assert load_manifest(tmp_path).environment("staging").observability is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('pushgateway_url = "http://127.0.0.1:9091/"', ""),
            r"environments\.staging\.observability\.pushgateway_url is required",
        ),
        (
            ('pushgateway_url = "http://127.0.0.1:9091/"', 'pushgateway_url = "127.0.0.1:9091"'),
            r"pushgateway_url is required: the http\(s\) base URL of the environment's "
            r"Prometheus Pushgateway",
        ),
        (
            (
                'pushgateway_url = "http://127.0.0.1:9091/"',
                'pushgateway_url = "http://ci:hunter2@127.0.0.1:9091"',
            ),
            r"pushgateway_url must not carry credentials; name the variable holding them with "
            r"pushgateway_auth",
        ),
        (
            ('"STAGING_PUSHGATEWAY_AUTH"', '"ci:hunter2"'),
            r"pushgateway_auth must name the environment variable holding user:password or a "
            r"bearer token .*STAGING_PUSHGATEWAY_AUTH",
        ),
        (
            ('"STAGING_PUSHGATEWAY_AUTH"', '"S"\njob = "ci"'),
            r"unknown key environments\.staging\.observability\.job; allowed here: "
            r"pushgateway_auth, pushgateway_url",
        ),
    ],
)
def test_bad_observability_tables_name_the_field_and_the_fix(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "wormhole-ci.toml").write_text(BASE + OBSERVABILITY.replace(*change))
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(tmp_path)
    assert "hunter2" not in str(info.value)  # a secret written literally is never echoed
