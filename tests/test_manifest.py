"""Manifest loading: the example loads; every kind of bad input names file, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from wormhole_ci.errors import ManifestError
from wormhole_ci.manifest import ServiceKind, TaskOverride, load_manifest


def write(root: Path, text: str) -> Path:
    (root / "wormhole-ci.toml").write_text(text)
    return root


def test_example_manifest_declares_the_five_services() -> None:
    manifest = load_manifest(EXAMPLE)
    assert manifest.project == "wormhole"
    assert [(s.name, s.kind, s.path) for s in manifest.services] == [
        ("api", ServiceKind.NODE, "api"),
        ("web", ServiceKind.NUXT, "web"),
        ("runner", ServiceKind.PYTHON, "runner"),
        ("hasura", ServiceKind.HASURA, "hasura"),
        ("delivery", ServiceKind.DELIVERY, "deploy"),
    ]
    assert manifest.service("hasura").database == "api"
    assert manifest.service("delivery").runbooks == "docs/runbooks"
    assert manifest.service("api").runbooks is None


def test_kind_and_path_are_inferred(tmp_path: Path) -> None:
    (tmp_path / "front").mkdir()
    (tmp_path / "front" / "nuxt.config.ts").write_text("export default {}\n")
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "pyproject.toml").write_text("")
    write(tmp_path, '[services.front]\n[services.jobs]\npath = "worker"\n')
    manifest = load_manifest(tmp_path)
    assert manifest.project == tmp_path.name.lower().replace("_", "-")
    assert [(s.name, s.kind, s.path) for s in manifest.services] == [
        ("front", ServiceKind.NUXT, "front"),
        ("jobs", ServiceKind.PYTHON, "worker"),
    ]


def test_task_overrides_in_every_form(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    write(
        tmp_path,
        """
[project]
name = "demo"
[services.api]
kind = "node"
[services.api.tasks]
test = "pnpm run test:unit --reporter 'dot'"
lint = ["pnpm", "run", "lint:ci"]
format = false
[services.api.tasks.e2e]
run = "pnpm run e2e"
env = { BASE_URL = "http://127.0.0.1:3000" }
""",
    )
    tasks = load_manifest(tmp_path).service("api").tasks
    assert tasks["test"] == TaskOverride(run=("pnpm", "run", "test:unit", "--reporter", "dot"))
    assert tasks["lint"] == TaskOverride(run=("pnpm", "run", "lint:ci"))
    assert tasks["format"] == TaskOverride(enabled=False)
    assert tasks["e2e"] == TaskOverride(
        run=("pnpm", "run", "e2e"), env=(("BASE_URL", "http://127.0.0.1:3000"),)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[services.api\nkind = 'node'\n", r"wormhole-ci\.toml: invalid TOML: .*line 1"),
        (
            "[project]\nname = 'x'\ncolour = 'blue'\n[services.api]\n",
            r"unknown key project\.colour; allowed here: name, repository",
        ),
        (
            "[project]\nrepository = 'git@github.com:acme/w.git'\n[services.api]\n",
            r"project\.repository must be the http\(s\) URL of the source repository",
        ),
        (
            "[services.api]\nkind = 'node'\ndockerfile = '../Dockerfile'\n",
            r"services\.api\.dockerfile must be a path relative to the service directory",
        ),
        (
            "[services.api]\nkind = 'node'\nscript = 'x'\n",
            r"unknown key services\.api\.script; allowed here: database, dockerfile, kind, migrations, path, runbooks, "
            "tasks",
        ),
        (
            "[services.api]\nkind = 'node'\n[services.api.tasks.test]\ncommand = 'x'\n",
            r"unknown key services\.api\.tasks\.test\.command",
        ),
        (
            "[images]\n[services.api]\n",
            r"unknown key images; allowed here: environments, project, security, services",
        ),
        (
            "[services.api]\nkind = 'rust'\n",
            r"services\.api\.kind: unknown kind 'rust'; use one of node, nuxt, python, hasura",
        ),
        (
            "[services.api]\npath = 'nope'\nkind = 'node'\n",
            r"services\.api\.path: directory 'nope' does not exist .*fix the path",
        ),
        (
            "[services.api]\npath = '../api'\nkind = 'node'\n",
            r"services\.api\.path must be a relative path inside the monorepo",
        ),
        (
            "[services.api]\nkind = 'node'\n[services.api.tasks]\ntest = ''\n",
            r"services\.api\.tasks\.test: empty command; use false",
        ),
        (
            "[services.api]\nkind = 'node'\n[services.api.tasks]\ntest = 3\n",
            r"services\.api\.tasks\.test: expected a command",
        ),
        (
            "[services.api]\nkind = 'hasura'\n",
            r"services\.api: neither `database` nor `migrations` is set; name the schema source",
        ),
        (
            "[services.db]\nkind = 'node'\npath = 'api'\n"
            "[services.api]\nkind = 'hasura'\ndatabase = 'db'\nmigrations = 'migrations'\n",
            r"services\.api: both `database` and `migrations` are set; .*remove the other",
        ),
        (
            "[services.api]\nkind = 'node'\nmigrations = 'migrations'\n",
            r"services\.api\.migrations is only valid for kind 'hasura'",
        ),
        (
            "[services.api]\nkind = 'hasura'\nmigrations = '../m'\n",
            r"services\.api\.migrations .*relative to the service directory, got '\.\./m'",
        ),
        (
            "[services.api]\nkind = 'node'\ndatabase = 'x'\n",
            r"database is only valid for kind 'hasura'",
        ),
        ("[services.API]\nkind = 'node'\n", r"service names are lower-case"),
        ("[project]\nname = 'x'\n", r"no \[services\.<name>\] tables"),
    ],
)
def test_bad_manifest_names_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "api").mkdir()
    write(tmp_path, text)
    with pytest.raises(ManifestError, match=expected) as info:
        load_manifest(tmp_path)
    assert str(tmp_path / "wormhole-ci.toml") in str(info.value)


def test_missing_manifest_and_source(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest not found; create it"):
        load_manifest(tmp_path)
    with pytest.raises(ManifestError, match=r"source directory does not exist; pass --source"):
        load_manifest(tmp_path / "absent")


def test_uninferable_kind_asks_for_it(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    write(tmp_path, "[services.docs]\n")
    with pytest.raises(
        ManifestError, match=r"cannot infer the kind of 'docs'.*set kind explicitly"
    ):
        load_manifest(tmp_path)


def test_unknown_service_lists_the_known_ones() -> None:
    with pytest.raises(
        ManifestError,
        match=r"no service named 'apii' \(known services: api, web, runner, hasura, delivery\)",
    ):
        load_manifest(EXAMPLE).service("apii")


def test_delivery_service_defaults_and_inference(tmp_path: Path) -> None:
    (tmp_path / "deploy" / "observability").mkdir(parents=True)
    (tmp_path / "ops" / "coolify").mkdir(parents=True)
    write(
        tmp_path,
        '[services.delivery]\npath = "deploy"\n'
        '[services.ops]\nkind = "delivery"\nrunbooks = "ops/runbooks/"\n',
    )
    manifest = load_manifest(tmp_path)
    assert [(s.name, s.kind, s.path, s.runbooks) for s in manifest.services] == [
        ("delivery", ServiceKind.DELIVERY, "deploy", "docs/runbooks"),
        ("ops", ServiceKind.DELIVERY, "ops", "ops/runbooks"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[services.deploy]\nkind = 'delivery'\nrunbooks = '/srv/runbooks'\n",
            r"services\.deploy\.runbooks must be a directory relative to the monorepo root "
            r"\(default \"docs/runbooks\"\), got '/srv/runbooks'",
        ),
        (
            "[services.deploy]\nkind = 'delivery'\nrunbooks = '../runbooks'\n",
            r"services\.deploy\.runbooks must be a directory relative",
        ),
        (
            "[services.deploy]\nkind = 'delivery'\nrunbooks = 3\n",
            r"services\.deploy\.runbooks must be a directory relative .*got 3",
        ),
        (
            "[services.deploy]\nkind = 'node'\nrunbooks = 'docs/runbooks'\n",
            r"services\.deploy\.runbooks is only valid for kind 'delivery'; remove it or set "
            r'kind = "delivery"',
        ),
        (
            "[services.ops]\nkind = 'delivery'\n",
            r"services\.ops\.path: directory 'ops' does not exist .*fix the path",
        ),
        (
            "[services.deploy]\nkind = 'delivery'\nrunbook = 'docs'\n",
            r"unknown key services\.deploy\.runbook; allowed here: .*runbooks",
        ),
        (
            "[services.deploy]\nkind = 'delivery'\ndatabase = 'api'\n",
            r"database is only valid for kind 'hasura'",
        ),
    ],
)
def test_bad_delivery_service_names_file_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "deploy").mkdir()
    write(tmp_path, text)
    with pytest.raises(ManifestError, match=expected) as info:
        load_manifest(tmp_path)
    assert str(tmp_path / "wormhole-ci.toml") in str(info.value)
