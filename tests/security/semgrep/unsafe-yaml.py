# type: ignore
# ruff: noqa
# Semgrep test target for rules/unsafe-yaml.yaml (run with `semgrep --test`); never imported.
import yaml
from ruamel.yaml import YAML
from yaml import FullLoader, SafeLoader


def unsafe(text, stream):
    # ruleid: wormhole.python.yaml-unsafe-load
    data = yaml.load(text)
    # ruleid: wormhole.python.yaml-unsafe-load
    data = yaml.load(text, Loader=yaml.Loader)
    # ruleid: wormhole.python.yaml-unsafe-load
    data = yaml.load(stream, Loader=FullLoader)
    # ruleid: wormhole.python.yaml-unsafe-load
    data = yaml.load(text, yaml.UnsafeLoader)
    # ruleid: wormhole.python.yaml-unsafe-load
    data = yaml.unsafe_load(text)
    # ruleid: wormhole.python.yaml-unsafe-load
    data = yaml.full_load(stream)
    # ruleid: wormhole.python.yaml-unsafe-load
    docs = list(yaml.load_all(stream, Loader=yaml.Loader))
    # ruleid: wormhole.python.yaml-unsafe-load
    loader = YAML(typ="unsafe")
    return data, docs, loader


def safe(text, stream):
    # ok: wormhole.python.yaml-unsafe-load
    data = yaml.safe_load(text)
    # ok: wormhole.python.yaml-unsafe-load
    data = yaml.load(text, Loader=yaml.SafeLoader)
    # ok: wormhole.python.yaml-unsafe-load
    data = yaml.load(text, Loader=yaml.CSafeLoader)
    # ok: wormhole.python.yaml-unsafe-load
    data = yaml.load(stream, SafeLoader)
    # ok: wormhole.python.yaml-unsafe-load
    docs = list(yaml.load_all(stream, Loader=yaml.BaseLoader))
    # ok: wormhole.python.yaml-unsafe-load
    loader = YAML(typ="safe")
    # ok: wormhole.python.yaml-unsafe-load
    config = json.load(stream)
    return data, docs, loader, config


def ruamel_instance(path):
    yaml = YAML(typ="safe")
    # ok: wormhole.python.yaml-unsafe-load
    return yaml.load(path)
