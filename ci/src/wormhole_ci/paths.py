"""Folder names that tools generate: never task inputs, never scanned, never sent to the engine."""

GENERATED_DIRS = frozenset(
    {
        "node_modules",
        ".venv",
        ".nuxt",
        ".output",
        "dist",
        "coverage",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        ".mypy_cache",
        ".wormhole-ci",
        ".turbo",
        ".cache",
    }
)
