"""The package's error tree: every failure a user can fix is one of these.

WormholeCiError
├── ManifestError        wormhole-ci.toml or a service's own files are wrong
├── ProvisionError       a toolchain is missing and cannot be installed
└── HasuraMetadataError  the Hasura metadata does not match the database
"""


class WormholeCiError(Exception):
    """Base class: the message is complete and says what to do next."""


class ManifestError(WormholeCiError):
    """The monorepo manifest, or a file it points to, is invalid."""


class ProvisionError(WormholeCiError):
    """A tool the plan needs is absent and could not be provisioned."""


class HasuraMetadataError(WormholeCiError):
    """Hasura metadata is malformed or refers to something the database lacks."""
