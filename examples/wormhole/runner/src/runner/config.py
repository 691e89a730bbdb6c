"""Runtime settings read from environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - the service runs in a container and must be reachable
DEFAULT_PORT = 8080
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_MONGO_URL = ""
DEFAULT_CONCURRENCY = 4
DEFAULT_BUILD_SHA = "dev"
DEFAULT_LOG_LEVEL = "INFO"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """Raised when an environment variable holds an unusable value."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    redis_url: str = DEFAULT_REDIS_URL
    mongo_url: str = DEFAULT_MONGO_URL
    """Where execution and audit logs go; empty: they are not stored (logged only)."""
    concurrency: int = DEFAULT_CONCURRENCY
    build_sha: str = DEFAULT_BUILD_SHA
    log_level: str = DEFAULT_LOG_LEVEL

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (``os.environ`` by default).

        Empty values count as unset, so ``BUILD_SHA=`` in an env file yields ``"dev"``.
        """
        source = os.environ if env is None else env
        return cls(
            host=_get(source, "HOST") or DEFAULT_HOST,
            port=_int(source, "PORT", DEFAULT_PORT, minimum=0, maximum=65535),
            redis_url=_redis_url(_get(source, "REDIS_URL") or DEFAULT_REDIS_URL),
            mongo_url=_mongo_url(_get(source, "MONGO_URL")),
            concurrency=_int(
                source, "RUNNER_CONCURRENCY", DEFAULT_CONCURRENCY, minimum=1, maximum=256
            ),
            build_sha=build_sha_from_env(source),
            log_level=_log_level(_get(source, "LOG_LEVEL").upper() or DEFAULT_LOG_LEVEL),
        )


def build_sha_from_env(env: Mapping[str, str] | None = None) -> str:
    """``BUILD_SHA`` or ``"dev"``; usable for logging even when the rest of the settings is bad."""
    return _get(os.environ if env is None else env, "BUILD_SHA") or DEFAULT_BUILD_SHA


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = _get(env, name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _redis_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"REDIS_URL must use redis://, rediss:// or unix://, got {url!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"REDIS_URL must name a host, got {url!r}")
    return url


def _mongo_url(url: str) -> str:
    if not url:
        return DEFAULT_MONGO_URL
    parts = urlsplit(url)
    if parts.scheme not in {"mongodb", "mongodb+srv"}:
        raise ConfigError(f"MONGO_URL must use mongodb:// or mongodb+srv://, got {_redact(url)!r}")
    if not parts.path.strip("/"):
        raise ConfigError(f"MONGO_URL must name a database, got {_redact(url)!r}")
    return url


def _redact(url: str) -> str:
    """``url`` without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _log_level(level: str) -> str:
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level
