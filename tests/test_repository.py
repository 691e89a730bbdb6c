"""Repository-level contracts: dagger.json against its schema and the module's Python packaging.
The GitHub workflows are tests/test_workflows.py."""

from __future__ import annotations

import json
import tomllib

import jsonschema
import pytest

from tests.conftest import ROOT, shared_reference

DAGGER_SCHEMA = "dagger.json.schema.json"


def test_dagger_json_is_valid_against_the_schema() -> None:
    schema = json.loads(shared_reference(DAGGER_SCHEMA).read_text())
    config = json.loads((ROOT / "dagger.json").read_text())
    jsonschema.validate(config, schema)
    assert config == {
        "name": "wormhole-ci",
        "engineVersion": "v0.21.11",
        "sdk": {"source": "python"},
        "source": "ci",
    }
    # and the validator does reject a wrong document
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**config, "sdk": 3}, schema)


def test_module_package_is_loadable_by_the_engine_runtime() -> None:
    project = tomllib.loads((ROOT / "ci" / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["dagger.mod"] == {
        "main_object": "wormhole_ci.main:WormholeCi"
    }
    # requires-python picks the runtime's Python: 3.11, as the runner and the native CLI
    assert project["project"]["requires-python"] == ">=3.11,<3.12"
    assert (ROOT / "ci" / ".python-version").read_text().strip() == "3.11"
    # no local SDK source and no dagger-io pin the engine's vendored SDK could not satisfy
    assert "sources" not in project.get("tool", {}).get("uv", {})
    assert "dagger-io" in project["project"]["dependencies"]
    assert not (ROOT / "ci" / "uv.lock").exists()
