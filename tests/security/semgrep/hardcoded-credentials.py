# type: ignore
# ruff: noqa
# Semgrep test target for rules/hardcoded-credentials.yaml (run with `semgrep --test`); never imported.
# The "credentials" below are made up for the test.
import os
from dataclasses import dataclass

import psycopg

# ruleid: wormhole.python.hardcoded-credential
DB_PASSWORD = "hunter2-prod"
# ruleid: wormhole.python.hardcoded-credential
API_KEY = "AKIAIOSFODNN7EXAMPLE"
# ruleid: wormhole.python.hardcoded-credential
jwt_secret = "s3cr3t!value"
# ruleid: wormhole.python.hardcoded-credential
GITHUB_TOKEN = "ghp_0123456789abcdefABCDEF0123456789abcd"


@dataclass
class Settings:
    # ruleid: wormhole.python.hardcoded-credential
    admin_password: str = "Winter2024!"


def connect():
    # ruleid: wormhole.python.hardcoded-credential
    conn = psycopg.connect(host="db", user="app", password="pg-Sup3r-secret")
    # ruleid: wormhole.python.hardcoded-credential
    headers = {"api_key": "live_51H8xYz"}
    # ruleid: wormhole.python.hardcoded-credential
    os.environ["RUNNER_TOKEN"] = "tok_4f9a1c"
    return conn, headers


def safe():
    # ok: wormhole.python.hardcoded-credential
    password = os.environ["DB_PASSWORD"]
    # ok: wormhole.python.hardcoded-credential
    token = os.getenv("RUNNER_TOKEN", "")
    # ok: wormhole.python.hardcoded-credential
    secret = ""
    # ok: wormhole.python.hardcoded-credential
    api_key = "<your-api-key>"
    # ok: wormhole.python.hardcoded-credential
    admin_password = "changeme"
    # ok: wormhole.python.hardcoded-credential
    PASSWORD_ENV = "DB_PASSWORD"
    # ok: wormhole.python.hardcoded-credential
    token_type = "bearer"
    # ok: wormhole.python.hardcoded-credential
    password_prompt = "Enter your password: "
    # ok: wormhole.python.hardcoded-credential
    CSRF_TOKEN = "x-csrf-token"
    # ok: wormhole.python.hardcoded-credential
    client_secret = "${CLIENT_SECRET}"
    # ok: wormhole.python.hardcoded-credential
    token = f"{os.environ['PREFIX']}-runner"
    # ok: wormhole.python.hardcoded-credential
    PASSWORD = "DB_PASSWORD"
    # ok: wormhole.python.hardcoded-credential
    OID_NAMES = {"challenge_password": "challengePassword", "secret": "㊙"}
    # ok: wormhole.python.hardcoded-credential
    conn = psycopg.connect(host="db", password=os.environ["PGPASSWORD"])
    return password, token, secret, api_key, conn
