"""The package's error tree: every failure a user can fix is one of these.

WormholeCiError
├── ManifestError        wormhole-ci.toml or a service's own files are wrong
├── ProvisionError       a toolchain is missing and cannot be installed
├── HasuraMetadataError  the Hasura metadata does not match the database
├── HasuraApiError       a Hasura engine's metadata API refuses us, or an apply did not hold
│   └── HasuraConflictError  the live metadata changed since we exported it
├── ImageError           an image cannot be built, saved or published
│   ├── RegistryError      a registry cannot be used (address, credentials, permissions, health)
│   └── ImmutableTagError  a tag already names different image content
├── SecretError          a secret reference cannot be resolved, or a secret was passed literally
├── MigrateError         a migration job cannot start, is blocked by a gate, or failed
├── CoolifyError         the Coolify API refuses us, or a deployment failed or never finished
└── DeployRefusedError   a deploy would ship images the registry does not hold
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class WormholeCiError(Exception):
    """Base class: the message is complete and says what to do next."""


class ManifestError(WormholeCiError):
    """The monorepo manifest, or a file it points to, is invalid."""


class ProvisionError(WormholeCiError):
    """A tool the plan needs is absent and could not be provisioned."""


class HasuraMetadataError(WormholeCiError):
    """Hasura metadata is malformed or refers to something the database lacks."""


@dataclass(frozen=True)
class InconsistentObject:
    """One metadata object a Hasura engine reports as inconsistent (`get_inconsistent_metadata`,
    or the `internal` list of a refused `replace_metadata`)."""

    type: str
    """Hasura's object type, e.g. "table", "object_relation", "select_permission"."""
    name: str
    """Hasura's name of it, e.g. "select_permission user in table users in source default"."""
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


class HasuraApiError(WormholeCiError):
    """A Hasura engine's metadata API is unreachable or refuses a request, or applied
    metadata came out inconsistent (and was restored)."""

    def __init__(self, message: str, *, inconsistent: Sequence[InconsistentObject] = ()) -> None:
        super().__init__(message)
        self.inconsistent: list[InconsistentObject] = list(inconsistent)
        """The inconsistent objects the engine named (empty when it named none)."""


class HasuraConflictError(HasuraApiError):
    """`replace_metadata` was refused: the live metadata's resource_version moved (someone
    edited it in the console since we exported it)."""


class ImageError(WormholeCiError):
    """An image could not be built, saved or published (or publishing it is refused)."""


class SecretError(WormholeCiError):
    """A secret reference (env:NAME, file:PATH) is invalid, unset, or a literal secret."""


class RegistryError(ImageError):
    """An image registry is unreachable, refuses us, or answers something unusable."""


class ImmutableTagError(ImageError):
    """Publishing would move an existing tag to different image content."""


class MigrateError(WormholeCiError):
    """A migration job could not run, was blocked by a gate, or a migration failed."""


class CoolifyError(WormholeCiError):
    """The Coolify API is unreachable or refuses a request, or a deployment did not finish."""


class DeployRefusedError(WormholeCiError):
    """A deploy (e.g. a rollback to an earlier commit) names images that were never published."""
