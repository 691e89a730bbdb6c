# type: ignore
# ruff: noqa
# Semgrep test target for rules/tls-verification.yaml (run with `semgrep --test`); never imported.
import ssl

import urllib3
import uvicorn

import aiohttp
import httpx
import requests


def unsafe(url):
    # ruleid: wormhole.python.tls-verify-disabled
    requests.get(url, timeout=5, verify=False)
    # ruleid: wormhole.python.tls-verify-disabled
    requests.request("POST", url, json={}, verify=False)
    # ruleid: wormhole.python.tls-verify-disabled
    client = httpx.Client(verify=False)
    # ruleid: wormhole.python.tls-verify-disabled
    httpx.post(url, verify=False)
    session = requests.Session()
    # ruleid: wormhole.python.tls-verify-disabled
    session.verify = False
    # ruleid: wormhole.python.tls-verify-disabled
    session.get(url, verify=False)
    # ruleid: wormhole.python.tls-verify-disabled
    connector = aiohttp.TCPConnector(ssl=False)

    # ruleid: wormhole.python.ssl-unverified-context
    ctx = ssl._create_unverified_context()
    # ruleid: wormhole.python.ssl-unverified-context
    ssl._create_default_https_context = ssl._create_unverified_context

    context = ssl.create_default_context()
    # ruleid: wormhole.python.ssl-cert-none
    context.check_hostname = False
    # ruleid: wormhole.python.ssl-cert-none
    context.verify_mode = ssl.CERT_NONE
    # ruleid: wormhole.python.ssl-cert-none
    pool = urllib3.PoolManager(cert_reqs="CERT_NONE")
    return client, connector, ctx, pool


def safe(url, context):
    # ok: wormhole.python.tls-verify-disabled
    requests.get(url, timeout=5)
    # ok: wormhole.python.tls-verify-disabled
    httpx.Client(verify="/etc/ssl/certs/internal-ca.pem")
    # ok: wormhole.python.tls-verify-disabled
    jwt_like.decode(url, verify=False)
    # ok: wormhole.python.ssl-unverified-context
    ctx = ssl.create_default_context(cafile="/etc/ssl/certs/internal-ca.pem")
    # ok: wormhole.python.ssl-cert-none
    context.verify_mode = ssl.CERT_REQUIRED
    # ok: wormhole.python.ssl-cert-none
    if context.verify_mode == ssl.CERT_NONE:
        raise RuntimeError("refusing an unverified context")
    # ok: wormhole.python.ssl-cert-none
    context.check_hostname = True
    # ok: wormhole.python.ssl-cert-none
    uvicorn.run(app, ssl_certfile="cert.pem", ssl_cert_reqs=ssl.CERT_NONE)
    # ok: wormhole.python.ssl-cert-none
    names = {ssl.CERT_NONE: "none", ssl.CERT_REQUIRED: "required"}
    return ctx
