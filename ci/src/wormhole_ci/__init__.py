"""wormhole-ci: the Wormhole monorepo's delivery pipeline (core needs no Dagger runtime)."""

__version__ = "0.1.0"
