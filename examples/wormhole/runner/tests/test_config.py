import pytest

from runner.config import ConfigError, Settings


def test_defaults_when_environment_is_empty() -> None:
    settings = Settings.from_env({})
    assert settings == Settings(
        host="0.0.0.0",  # noqa: S104
        port=8080,
        redis_url="redis://localhost:6379/0",
        mongo_url="",
        concurrency=4,
        build_sha="dev",
        log_level="INFO",
    )


def test_reads_every_variable() -> None:
    settings = Settings.from_env(
        {
            "HOST": "127.0.0.1",
            "PORT": "9000",
            "REDIS_URL": "rediss://cache.internal:6380/2",
            "MONGO_URL": "mongodb://logs.internal:27017/wormhole_logs",
            "RUNNER_CONCURRENCY": "8",
            "BUILD_SHA": "3f2c1ab",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.host == "127.0.0.1"
    assert settings.port == 9000
    assert settings.redis_url == "rediss://cache.internal:6380/2"
    assert settings.mongo_url == "mongodb://logs.internal:27017/wormhole_logs"
    assert settings.concurrency == 8
    assert settings.build_sha == "3f2c1ab"
    assert settings.log_level == "DEBUG"


def test_empty_values_count_as_unset() -> None:
    settings = Settings.from_env({"BUILD_SHA": "", "PORT": " ", "REDIS_URL": "", "LOG_LEVEL": ""})
    assert settings.build_sha == "dev"
    assert settings.log_level == "INFO"
    assert settings.port == 8080
    assert settings.redis_url == "redis://localhost:6379/0"


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILD_SHA", "from-environ")
    monkeypatch.setenv("PORT", "0")
    settings = Settings.from_env()
    assert settings.build_sha == "from-environ"
    assert settings.port == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT must be an integer"),
        ({"PORT": "70000"}, "PORT must be between 0 and 65535"),
        ({"RUNNER_CONCURRENCY": "0"}, "RUNNER_CONCURRENCY must be between 1 and 256"),
        ({"RUNNER_CONCURRENCY": "2.5"}, "RUNNER_CONCURRENCY must be an integer"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL must use"),
        ({"REDIS_URL": "redis:///0"}, "REDIS_URL must name a host"),
        ({"MONGO_URL": "postgresql://localhost/x"}, "MONGO_URL must use mongodb://"),
        ({"MONGO_URL": "mongodb://localhost:27017"}, "MONGO_URL must name a database"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ],
)
def test_rejects_bad_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_a_bad_mongo_url_is_reported_without_its_password() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"MONGO_URL": "mongodb://app:hunter2@db.internal:27017"})
    assert "hunter2" not in str(info.value)
    assert "mongodb://app:***@db.internal:27017" in str(info.value)
