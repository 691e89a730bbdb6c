"""Alertmanager by amtool: the configuration, with its secret files stood in for."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import cast

import yaml

from wormhole_ci.delivery.documents import InvalidFile, load_yaml
from wormhole_ci.delivery.rules import shown_path
from wormhole_ci.delivery.tools import indented, run

# A value every *_file setting accepts (URL, password, key): only the file's presence counts.
_STAND_IN = "http://127.0.0.1:9/stand-in"


def config_problems(amtool: str, config: Path, root: Path) -> list[str]:
    """`amtool check-config` on a copy of `config` whose `*_file` secrets are temporary files.

    The secrets live only in the running stack (/etc/alertmanager/secrets/…); stand-ins
    let amtool check everything else exactly as Alertmanager would load it.
    """
    shown = shown_path(config, root)
    try:
        doc = load_yaml(config, shown)
    except InvalidFile as exc:
        return [str(exc)]
    with tempfile.TemporaryDirectory(prefix="wormhole-ci-alertmanager-") as tmp:
        secrets = Path(tmp) / "secrets"
        secrets.mkdir()
        _replace_files(doc, secrets, [0])
        copy = Path(tmp) / "alertmanager.yml"
        copy.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        done = run([amtool, "check-config", copy])
        if done.code == 0:
            return []
        return [
            f"{shown}: amtool check-config failed; fix what it reports:"
            + indented(done.output, (str(copy), shown))
        ]


def _replace_files(node: object, secrets: Path, counter: list[int]) -> None:
    """Point every `*_file` string setting under `node` at a new stand-in file."""
    if isinstance(node, dict):
        table = cast("dict[str, object]", node)
        for key, value in table.items():
            if str(key).endswith("_file") and isinstance(value, str):
                counter[0] += 1
                stand_in = secrets / f"{counter[0]}-{Path(value).name}"
                stand_in.write_text(_STAND_IN, encoding="utf-8")
                table[key] = str(stand_in)
            else:
                _replace_files(value, secrets, counter)
    elif isinstance(node, list):
        for item in cast("list[object]", node):
            _replace_files(item, secrets, counter)
