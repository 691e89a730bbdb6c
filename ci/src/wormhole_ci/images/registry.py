"""A small OCI Distribution (registry v2) client: does a tag exist, and which image does it name."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

import httpx

from wormhole_ci.errors import RegistryError
from wormhole_ci.images.oci import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    digest_matches,
    is_attestation,
    is_digest,
    platform_of,
    sha256_digest,
)
from wormhole_ci.jsonish import as_dict, as_list

# Every manifest kind we can read, so the registry never converts (or refuses) for lack of
# an Accept it likes; without it some registries answer with a legacy schema-1 manifest.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

# The distribution spec's grammar: anything else is refused before it reaches a URL path.
_REPOSITORY_RE = re.compile(
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_CHALLENGE_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]*))')
_MAX_NESTING = 2  # index -> index -> manifest is the deepest real images go
_MAX_BACKOFF = 5.0
_USER_AGENT = "wormhole-ci"


@dataclass(frozen=True)
class RemoteImage:
    """What a tag names in a registry."""

    reference: str
    """`host[:port]/repository:tag`, for messages."""
    digest: str
    """The digest of the manifest (or index) the tag points to."""
    media_type: str
    configs: Mapping[str, str]
    """Platform (`os/arch[/variant]`) -> image config digest: the content identity."""


@dataclass(frozen=True)
class _Challenge:
    scheme: str
    params: dict[str, str]


class Registry:
    """A registry at `address` (`host[:port]`, optionally with `http://`/`https://`).

    Without a scheme, loopback hosts are spoken to over http and everything else over https.
    Requests start anonymous and answer the registry's `WWW-Authenticate` challenge (Basic,
    or a Bearer token from its realm); transient failures (5xx, 429, dropped connections)
    are retried with backoff, and every public call is bounded by `deadline` seconds.
    """

    def __init__(
        self,
        address: str,
        username: str | None = None,
        password: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        deadline: float = 60.0,
        backoff: float = 0.5,
    ) -> None:
        self.base_url, self.host = _parse_address(address)
        self.address = address
        if (username is None) != (password is None) or username == "":
            raise RegistryError(
                f"registry {address}: a username and a password go together: pass both "
                "--username and the password secret, or neither for anonymous access"
            )
        self.username = username
        # The Basic header, kept only in this private attribute (never in repr or messages).
        self._credentials = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
            if username and password
            else None
        )
        self._timeout = timeout
        self._deadline = deadline
        self._backoff = backoff
        self._basic = False  # the registry asked for Basic: send it up front from then on
        self._tokens: dict[str, str] = {}  # Bearer token per scope
        self._client = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            # Blobs are often served by a redirect to object storage; httpx drops the
            # Authorization header when a redirect leaves the registry's origin.
            follow_redirects=True,
            headers={"User-Agent": _USER_AGENT},
        )

    def __repr__(self) -> str:
        return f"Registry({self.address!r}, username={self.username!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def ping(self) -> None:
        """Check that the address serves the registry API and accepts our credentials."""
        deadline = time.monotonic() + self._deadline
        response = self._request("GET", "/v2/", scope=None, deadline=deadline)
        if response.status_code == 200:
            return
        if response.status_code == 403:
            raise RegistryError(
                f"registry {self.host} refused {self._who()} (HTTP 403 on GET /v2/): the "
                "account may be disabled or this machine's address not allowed; check the "
                "registry's access rules for that user"
            )
        if response.status_code == 404:
            raise RegistryError(
                f"{self.host} does not serve the registry API (GET /v2/ answered 404): "
                "check the registry address (host[:port], no path)"
            )
        raise self._unexpected(response, "GET /v2/")

    def resolve(self, repository: str, tag: str) -> RemoteImage | None:
        """The image `repository:tag` names, or None when the tag (or repository) does not exist."""
        _check_name(repository, tag, self.host)
        deadline = time.monotonic() + self._deadline
        reference = f"{self.host}/{repository}:{tag}"
        scope = f"repository:{repository}:pull"
        # GET, not HEAD: the body is needed anyway to list the platforms' configs.
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{tag}",
            scope=scope,
            deadline=deadline,
            accept=ACCEPT,
        )
        if response.status_code == 404:
            # MANIFEST_UNKNOWN / NAME_UNKNOWN in the spec; Harbor says NOT_FOUND. Any 404 on
            # this path means "no such tag": a wrong address fails `ping()` first.
            return None
        self._require_ok(response, repository, f"GET manifest {reference}")
        body = response.content
        digest = sha256_digest(body)
        served = response.headers.get("Docker-Content-Digest")
        if served and served.startswith("sha256:") and served != digest:
            raise RegistryError(
                f"registry {self.host} served {reference} with Docker-Content-Digest {served} "
                f"but the manifest's bytes hash to {digest}: something between us and the "
                "registry altered the manifest"
            )
        media_type, document = self._manifest(body, response, reference)
        configs = self._configs(
            repository,
            document=document,
            media_type=media_type,
            platform=None,
            deadline=deadline,
            depth=0,
            reference=reference,
        )
        return RemoteImage(
            reference=reference, digest=digest, media_type=media_type, configs=configs
        )

    # -- manifests ---------------------------------------------------------------------

    def _configs(
        self,
        repository: str,
        *,
        document: dict[str, object],
        media_type: str,
        platform: str | None,
        deadline: float,
        depth: int,
        reference: str,
    ) -> dict[str, str]:
        if media_type in MANIFEST_TYPES:
            config_digest = _descriptor_digest(document.get("config"))
            if config_digest is None:
                raise self._invalid(reference, "a manifest without a config digest")
            if platform is None:
                platform = self._config_platform(repository, config_digest, deadline, reference)
            return {platform: config_digest}
        if depth >= _MAX_NESTING:
            raise self._invalid(reference, "image indexes nested deeper than any builder writes")
        configs: dict[str, str] = {}
        for entry in as_list(document.get("manifests")) or []:
            fields = as_dict(entry) or {}
            entry_platform = platform_of(fields.get("platform"))
            if is_attestation(entry_platform, fields.get("annotations")):
                continue
            child_digest = _descriptor_digest(fields)
            if child_digest is None:
                raise self._invalid(reference, "an index entry without a digest")
            child_type, child = self._child_manifest(repository, child_digest, deadline, reference)
            found = self._configs(
                repository,
                document=child,
                media_type=child_type,
                platform=entry_platform,
                deadline=deadline,
                depth=depth + 1,
                reference=reference,
            )
            for key, config in found.items():
                if key in configs:
                    raise self._invalid(reference, f"an index that lists {key} twice")
                configs[key] = config
        return configs

    def _child_manifest(
        self, repository: str, digest: str, deadline: float, reference: str
    ) -> tuple[str, dict[str, object]]:
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{digest}",
            scope=f"repository:{repository}:pull",
            deadline=deadline,
            accept=ACCEPT,
        )
        self._require_ok(response, repository, f"GET manifest {digest} of {reference}")
        if not digest_matches(response.content, digest):
            raise self._invalid(reference, f"manifest {digest} whose bytes have another digest")
        return self._manifest(response.content, response, reference)

    def _config_platform(
        self, repository: str, digest: str, deadline: float, reference: str
    ) -> str:
        response = self._request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            scope=f"repository:{repository}:pull",
            deadline=deadline,
        )
        self._require_ok(response, repository, f"GET config {digest} of {reference}")
        if not digest_matches(response.content, digest):
            raise self._invalid(reference, f"config blob {digest} whose bytes have another digest")
        config = _json_object(response.content)
        platform = platform_of(config)
        if platform is None:
            raise self._invalid(reference, f"config {digest} without os/architecture")
        return platform

    def _manifest(
        self, body: bytes, response: httpx.Response, reference: str
    ) -> tuple[str, dict[str, object]]:
        document = _json_object(body)
        if document is None:
            raise self._invalid(reference, "a manifest that is not a JSON object")
        declared = document.get("mediaType")
        header = response.headers.get("Content-Type", "").split(";")[0].strip()
        media_type = declared if isinstance(declared, str) and declared else header
        if media_type not in MANIFEST_TYPES + INDEX_TYPES:
            # mediaType is optional in OCI manifests: fall back to the document's shape.
            if "manifests" in document:
                media_type = OCI_INDEX
            elif "config" in document and "layers" in document:
                media_type = OCI_MANIFEST
            else:
                raise self._invalid(
                    reference, f"a manifest of unsupported type {media_type or '(none)'}"
                )
        return media_type, document

    # -- HTTP --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        scope: str | None,
        deadline: float,
        accept: str | None = None,
    ) -> httpx.Response:
        """One registry request, answering one auth challenge; 401 after that is an error."""
        answered = False
        while True:
            headers = {"Accept": accept} if accept else {}
            authorization = self._authorization(scope)
            if authorization:
                headers["Authorization"] = authorization
            response = self._exchange(
                method, path, headers=headers, deadline=deadline, what=f"{method} {path}"
            )
            if response.status_code != 401:
                return response
            challenge = _challenge(response)
            if answered or challenge is None:
                raise self._unauthorized(challenge)
            self._answer(challenge, scope, deadline)
            answered = True

    def _authorization(self, scope: str | None) -> str | None:
        token = self._tokens.get(scope or "")
        if token:
            return f"Bearer {token}"
        if self._basic and self._credentials is not None:
            return self._credentials
        return None

    def _answer(self, challenge: _Challenge, scope: str | None, deadline: float) -> None:
        if challenge.scheme == "basic":
            if self._credentials is None:
                raise self._needs_credentials()
            self._basic = True
            return
        if challenge.scheme != "bearer":
            raise RegistryError(
                f"registry {self.host} asks for {challenge.scheme} authentication, which "
                "wormhole-ci does not speak (Basic and Bearer tokens only)"
            )
        self._tokens[scope or ""] = self._fetch_token(challenge, scope, deadline)

    def _fetch_token(self, challenge: _Challenge, scope: str | None, deadline: float) -> str:
        realm = challenge.params.get("realm", "")
        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise RegistryError(
                f"registry {self.host} named an unusable token service ({realm!r}): "
                "check the registry's auth configuration"
            )
        if url.scheme == "http" and self._credentials is not None and not _is_loopback(url.host):
            raise RegistryError(
                f"registry {self.host} wants the credentials sent to {url.host} over plain "
                "http: refusing to send a password unencrypted; configure an https token realm"
            )
        params = {"service": challenge.params.get("service", "")}
        wanted = challenge.params.get("scope") or scope
        if wanted:
            params["scope"] = wanted
        params = {k: v for k, v in params.items() if v}
        headers = {"Authorization": self._credentials} if self._credentials else {}
        response = self._exchange(
            "GET",
            url,
            headers=headers,
            params=params,
            deadline=deadline,
            what=f"GET token from {url.host}",
        )
        if response.status_code in (401, 403):
            if self._credentials is None:
                raise self._needs_credentials()
            raise self._rejected()
        if response.status_code != 200:
            raise self._unexpected(response, f"GET token from {url.host}")
        body = _json_object(response.content) or {}
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(
                f"the token service of registry {self.host} ({url.host}) answered without a "
                "token: check the registry's auth configuration"
            )
        return token

    def _exchange(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        deadline: float,
        what: str,
    ) -> httpx.Response:
        """Send until an answer that is not transient, within `deadline` (monotonic)."""
        attempt = 0
        started = time.monotonic()
        while True:
            remaining = deadline - time.monotonic()
            last: str
            retry_after: float | None = None
            # No single attempt may outlive the call's deadline.
            timeout = httpx.Timeout(max(0.1, min(self._timeout, remaining)))
            request = self._client.build_request(
                method, url, headers=headers, params=params, timeout=timeout
            )
            try:
                response = self._client.send(request)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
                # A wrong address or a stopped registry: waiting would not fix it.
                reason = _reason(exc)
                if "CERTIFICATE_VERIFY_FAILED" in reason:
                    raise RegistryError(
                        f"registry {self.host} presented a TLS certificate this machine does "
                        f"not trust ({reason}): add the registry's CA certificate to the "
                        "system trust store"
                    ) from None
                raise RegistryError(
                    f"registry {self.host} is unreachable ({reason}): check the address "
                    "and that the registry is running"
                ) from None
            except httpx.TransportError as exc:
                last = _reason(exc)
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return response
                last = f"HTTP {response.status_code}"
                retry_after = _retry_after(response)
            delay = retry_after if retry_after is not None else self._backoff * 2**attempt
            delay = min(delay, _MAX_BACKOFF)
            if time.monotonic() + delay >= deadline:
                elapsed = time.monotonic() - started
                raise RegistryError(
                    f"registry {self.host} kept failing on {what} ({last}) for {elapsed:.0f}s: "
                    "the registry is unhealthy or overloaded; check its logs and retry later"
                )
            time.sleep(delay)
            attempt += 1

    # -- errors ------------------------------------------------------------------------

    def _require_ok(self, response: httpx.Response, repository: str, what: str) -> None:
        if response.status_code == 200:
            return
        if response.status_code == 403:
            raise self._forbidden(repository)
        raise self._unexpected(response, what)

    def _who(self) -> str:
        return f"user {self.username}" if self.username else "anonymous access"

    def _rejected(self) -> RegistryError:
        return RegistryError(
            f"registry {self.host} rejected the credentials for user {self.username}: "
            "check --username and the password secret"
        )

    def _needs_credentials(self) -> RegistryError:
        return RegistryError(
            f"registry {self.host} requires authentication: pass --username and the password secret"
        )

    def _forbidden(self, repository: str | None) -> RegistryError:
        target = f"repository {repository}" if repository else "this operation"
        return RegistryError(
            f"registry {self.host} denied {self._who()} access to {target}: grant that "
            "user pull/push permission on the repository, or check the repository name"
        )

    def _unauthorized(self, challenge: _Challenge | None) -> RegistryError:
        if challenge is not None and challenge.params.get("error") == "insufficient_scope":
            # Token services hand out a token without the asked-for access rather than
            # refusing: the credentials are fine, the permission is missing.
            scope = challenge.params.get("scope", "")
            parts = scope.split(":")
            return self._forbidden(parts[1] if len(parts) == 3 else None)
        if self._credentials is None:
            return self._needs_credentials()
        return self._rejected()

    def _unexpected(self, response: httpx.Response, what: str) -> RegistryError:
        return RegistryError(
            f"registry {self.host} answered HTTP {response.status_code} to {what}"
            f"{_error_summary(response)}: check the registry address and repository name"
        )

    def _invalid(self, reference: str, what: str) -> RegistryError:
        return RegistryError(
            f"registry {self.host} served {what} for {reference}: the image in the registry "
            "is malformed; delete or re-push it"
        )


def _parse_address(address: str) -> tuple[str, str]:
    """(base URL, `host[:port]`) of a registry address."""
    text = address.strip()
    scheme: str | None = None
    match = re.match(r"^(https?)://(.*)$", text, re.IGNORECASE)
    if match:
        scheme, text = match.group(1).lower(), match.group(2).rstrip("/")
    problem = None
    if not text or any(c.isspace() for c in text):
        problem = "it is empty or contains spaces"
    elif "/" in text:
        problem = "it has a path; the repository path belongs in the image name"
    elif "@" in text:
        problem = "it has credentials in it; pass --username and a password secret instead"
    url = None
    if problem is None:
        try:
            url = httpx.URL(f"{scheme or 'https'}://{text}")
        except httpx.InvalidURL as exc:
            problem = str(exc)
    if url is None or not url.host:
        raise RegistryError(
            f"invalid registry address {address!r}: {problem or 'no host'}; "
            "write host[:port], e.g. 127.0.0.1:5000 or registry.example.com"
        )
    if scheme is None:
        # Registries speak TLS; only a registry on this machine is trusted without it.
        scheme = "http" if _is_loopback(url.host) else "https"
    return f"{scheme}://{text}", text


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_name(repository: str, tag: str, host: str) -> None:
    if not _REPOSITORY_RE.match(repository):
        raise RegistryError(
            f"invalid repository name {repository!r} for registry {host}: lowercase letters, "
            "digits and . _ - separators, path components joined by /"
        )
    if not _TAG_RE.match(tag):
        raise RegistryError(
            f"invalid tag {tag!r}: at most 128 of letters, digits, _ . - (not starting with . or -)"
        )


def _challenge(response: httpx.Response) -> _Challenge | None:
    """The Bearer challenge if offered (it carries the scope), else Basic, else another scheme."""
    found: list[_Challenge] = []
    for value in response.headers.get_list("WWW-Authenticate"):
        scheme, _, rest = value.strip().partition(" ")
        params = {
            m.group(1).lower(): m.group(2) or m.group(3) or ""
            for m in _CHALLENGE_PARAM_RE.finditer(rest)
        }
        found.append(_Challenge(scheme.lower(), params))
    for wanted in ("bearer", "basic"):
        for challenge in found:
            if challenge.scheme == wanted:
                return challenge
    return found[0] if found else None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _error_summary(response: httpx.Response) -> str:
    """`: CODE: message` from the spec's error body, when there is one."""
    body = _json_object(response.content) or {}
    parts: list[str] = []
    for error in as_list(body.get("errors")) or []:
        fields = as_dict(error) or {}
        code, message = fields.get("code"), fields.get("message")
        parts.append(": ".join(str(p) for p in (code, message) if p))
    summary = "; ".join(p for p in parts if p)[:300]
    return f" ({summary})" if summary else ""


def _descriptor_digest(value: object) -> str | None:
    digest = (as_dict(value) or {}).get("digest")
    return digest if isinstance(digest, str) and is_digest(digest) else None


def _json_object(data: bytes) -> dict[str, object] | None:
    try:
        return as_dict(json.loads(data))
    except (ValueError, UnicodeDecodeError):
        return None
