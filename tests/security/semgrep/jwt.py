# type: ignore
# ruff: noqa
# Semgrep test target for rules/jwt.yaml (run with `semgrep --test`); never imported.
import jwt
from jose import jwt as jose_jwt


def unsafe(token, key):
    # ruleid: wormhole.python.jwt-signature-not-verified
    claims = jwt.decode(token, options={"verify_signature": False})
    # ruleid: wormhole.python.jwt-signature-not-verified
    opts = {"verify_exp": True, "verify_signature": False}
    claims = jwt.decode(token, key, algorithms=["HS256"], options=opts)
    # ruleid: wormhole.python.jwt-signature-not-verified
    legacy = jwt.decode(token, key, verify=False)
    # ruleid: wormhole.python.jwt-signature-not-verified
    other = jose_jwt.decode(token, key, options={"verify_signature": False})

    # ruleid: wormhole.python.jwt-none-algorithm
    claims = jwt.decode(token, key, algorithms=["HS256", "none"])
    # ruleid: wormhole.python.jwt-none-algorithm
    forged = jwt.encode({"sub": "admin"}, None, algorithm="none")
    return claims, legacy, other, forged


def safe(token, key):
    # ok: wormhole.python.jwt-signature-not-verified
    claims = jwt.decode(token, key, algorithms=["RS256"])
    # ok: wormhole.python.jwt-signature-not-verified
    header = jwt.get_unverified_header(token)
    # ok: wormhole.python.jwt-signature-not-verified
    claims = jwt.decode(token, key, algorithms=["RS256"], options={"verify_aud": False})
    # ok: wormhole.python.jwt-none-algorithm
    signed = jwt.encode({"sub": "u1"}, key, algorithm="HS256")
    # ok: wormhole.python.jwt-none-algorithm
    data = codecs.decode(token, encoding="none")
    return claims, header, signed, data
