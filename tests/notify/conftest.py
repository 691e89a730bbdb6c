"""The release machine's fixtures (the Coolify contract server and loopback /healthz)."""

from tests.release.test_machine import coolify, health

__all__ = ["coolify", "health"]
