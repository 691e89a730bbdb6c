# type: ignore
# ruff: noqa
# Semgrep test target for rules/cors.yaml (run with `semgrep --test`); never imported.
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from flask_cors import CORS
from starlette.middleware import Middleware

app = FastAPI()

# ruleid: wormhole.python.cors-wildcard-credentials
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=True, allow_methods=["*"])
# ruleid: wormhole.python.cors-wildcard-credentials
middleware = [Middleware(CORSMiddleware, allow_credentials=True, allow_origins=["*"])]
# ruleid: wormhole.python.cors-wildcard-credentials
app.add_middleware(CORSMiddleware, allow_origin_regex=".*", allow_credentials=True)
# ruleid: wormhole.python.cors-wildcard-credentials
CORS(flask_app, supports_credentials=True)

# ok: wormhole.python.cors-wildcard-credentials
app.add_middleware(
    CORSMiddleware, allow_origins=["https://app.wormhole.example"], allow_credentials=True
)
# ok: wormhole.python.cors-wildcard-credentials
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=False)
# ok: wormhole.python.cors-wildcard-credentials
app.add_middleware(CORSMiddleware, allow_origins=["*"])
# ok: wormhole.python.cors-wildcard-credentials
CORS(flask_app, origins=["https://app.wormhole.example"], supports_credentials=True)
