"""OCI / Docker v2 registry client: manifests (indexes resolved to linux/amd64), token auth
and a content-addressed blob cache.

Auth follows the distribution spec: a 401 carries ``WWW-Authenticate: Bearer realm=...,
service=...,scope=...``; we fetch a token from the realm (anonymously, or with the user's
credentials from ~/.docker/config.json: its credential helpers, else "auths") and retry.
Registries on loopback addresses (and those listed as insecure) are spoken to over plain
HTTP, like Docker does.

Blobs land in ``<cache>/blobs/sha256/<hex>`` only after their digest and size checked out,
so a cached blob is never downloaded again (layers shared between images are fetched once).
An interrupted download leaves ``<hex>.partial`` and the next pull resumes it with an HTTP
Range request (the bytes already there are hashed again first).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from banger.core.errors import ChecksumMismatch, MissingTool, RegistryError
from banger.core.models import ProgressEvent
from banger.core.oci import (
    ACCEPT,
    HELPER_NOT_FOUND,
    Descriptor,
    Manifest,
    Reference,
    api_host,
    check_digest,
    credential_helper,
    docker_credentials,
    is_index,
    is_loopback,
    may_send_credentials,
    media_type_of,
    parse_challenge,
    parse_helper_output,
    parse_manifest,
    select_platform,
    token_query,
)
from banger.core.units import format_size
from banger.host.processes import CommandRunner, SubprocessRunner

STAGE = "pull"
_MAX_MANIFEST = 4 * 1024 * 1024
_CHUNK = 1 << 20
_PROGRESS_EVERY = 0.5  # seconds between progress events of one layer

ProgressSink = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class ResolvedImage:
    reference: Reference
    digest: str  # of the platform manifest
    manifest: Manifest


def docker_config_path(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def load_docker_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class DockerCredentials:
    """Registry logins the way docker finds them: a credential helper named by
    ~/.docker/config.json ("credHelpers" per registry, else "credsStore"), run through the
    CommandRunner as `docker-credential-<helper> get` with the server on stdin; else its
    "auths" entries."""

    def __init__(
        self, config: Mapping[str, Any] | None = None, runner: CommandRunner | None = None
    ) -> None:
        self._config = config or {}
        self._runner = runner or SubprocessRunner()
        self._known: dict[str, tuple[str, str] | None] = {}

    async def get(self, registry: str) -> tuple[str, str] | None:
        if registry not in self._known:
            self._known[registry] = await self._lookup(registry)
        return self._known[registry]

    async def _lookup(self, registry: str) -> tuple[str, str] | None:
        helper = credential_helper(self._config, registry)
        if helper is not None:
            name, server = helper
            program = f"docker-credential-{name}"
            try:
                result = await self._runner.run(
                    [program, "get"], check=False, input=server.encode() + b"\n"
                )
            except MissingTool:
                raise RegistryError(
                    f"credential helper {program} (from ~/.docker/config.json) is not on PATH",
                    hint=f"install {program}, or remove it from credsStore/credHelpers",
                ) from None
            if result.returncode == 0:
                return parse_helper_output(name, result.stdout)
            said = " ".join((result.stderr or result.stdout).split())[:200]
            if HELPER_NOT_FOUND not in said:
                raise RegistryError(
                    f"credential helper {program} failed for {server}: "
                    f"{said or f'exit {result.returncode}'}",
                    hint=f"check it with `echo {server} | {program} get`",
                )
        return docker_credentials(self._config, registry)


class BlobCache:
    """``<root>/blobs/sha256/<hex>``: complete, verified blobs only."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}

    def path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / check_digest(digest)

    def has(self, descriptor: Descriptor) -> bool:
        path = self.path(descriptor.digest)
        try:
            return path.stat().st_size == descriptor.size
        except FileNotFoundError:
            return False

    def lock(self, digest: str) -> asyncio.Lock:
        return self._locks.setdefault(digest, asyncio.Lock())


class RegistryClient:
    """One session against registries; use as an async context manager."""

    def __init__(
        self, cache: BlobCache, *, credentials: Mapping[str, Any] | None = None,
        insecure: Sequence[str] = (), concurrency: int = 3, runner: CommandRunner | None = None,
    ) -> None:
        self.cache = cache
        self._credentials = DockerCredentials(credentials, runner)
        self._insecure = set(insecure)
        self._tokens: dict[tuple[str, str], str] = {}
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self.downloaded_bytes = 0

    async def __aenter__(self) -> RegistryClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120),
            auto_decompress=False,
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    # -- manifests ----------------------------------------------------------------------

    async def resolve(self, ref: Reference) -> ResolvedImage:
        body, content_type, digest = await self._manifest(ref, ref.reference)
        if is_index(body, content_type):
            chosen = select_platform(body)
            body, content_type, digest = await self._manifest(ref, chosen.digest)
            if is_index(body, content_type):
                raise RegistryError("the image index points at another index")
        return ResolvedImage(ref, digest, parse_manifest(body))

    async def _manifest(self, ref: Reference, reference: str) -> tuple[dict[str, Any], str, str]:
        url = f"{self._base(ref)}/manifests/{reference}"
        async with await self._get(ref, url, {"Accept": ACCEPT}) as response:
            if response.status == 404:
                raise RegistryError(f"{ref} not found in the registry",
                                    hint="check the repository name and tag")
            self._check(response, f"manifest of {ref}")
            raw = await _read_capped(response, _MAX_MANIFEST + 1)
            content_type = response.headers.get("Content-Type", "")
        if len(raw) > _MAX_MANIFEST:
            raise RegistryError(f"the manifest of {ref} is larger than 4 MiB")
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise ChecksumMismatch(f"manifest {reference} has digest {digest}")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(f"the manifest of {ref} is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RegistryError(f"the manifest of {ref} is not a JSON object")
        return body, media_type_of(body, content_type), digest

    # -- blobs ----------------------------------------------------------------------------

    async def fetch_blob(
        self, ref: Reference, blob: Descriptor, on_bytes: Callable[[int], None] | None = None
    ) -> Path:
        """The verified blob in the cache, downloading (or resuming) it if needed."""
        path = self.cache.path(blob.digest)
        async with self.cache.lock(blob.digest):
            if self.cache.has(blob):
                if on_bytes:
                    on_bytes(blob.size)
                return path
            async with self._slots:
                await self._download(ref, blob, path, on_bytes)
        return path

    async def _download(
        self, ref: Reference, blob: Descriptor, path: Path,
        on_bytes: Callable[[int], None] | None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        hasher = hashlib.sha256()
        have = 0
        if partial.exists():
            with open(partial, "rb") as f:
                while chunk := f.read(_CHUNK):
                    hasher.update(chunk)
                    have += len(chunk)
            if have > blob.size:
                partial.unlink()
                hasher, have = hashlib.sha256(), 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        url = f"{self._base(ref)}/blobs/{blob.digest}"
        if have < blob.size:
            async with await self._get(ref, url, headers) as response:
                if response.status == 200 and have:
                    hasher, have = hashlib.sha256(), 0  # the server ignored the Range
                elif response.status == 416:
                    partial.unlink(missing_ok=True)
                    raise RegistryError(f"the registry refused to resume {blob.digest}",
                                        hint="run the pull again")
                elif response.status not in (200, 206):
                    self._check(response, f"layer {blob.digest}")
                if on_bytes and have:
                    on_bytes(have)
                with open(partial, "ab" if have else "wb") as out:
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        have += len(chunk)
                        if have > blob.size:
                            raise ChecksumMismatch(
                                f"the registry sent more than the {blob.size} bytes "
                                f"{blob.digest} has"
                            )
                        hasher.update(chunk)
                        out.write(chunk)
                        self.downloaded_bytes += len(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
        if have != blob.size:
            raise RegistryError(
                f"download of {blob.digest} ended early ({have} of {blob.size} bytes)",
                hint="run the pull again: it resumes where it stopped",
            )
        actual = "sha256:" + hasher.hexdigest()
        if actual != blob.digest:
            partial.unlink(missing_ok=True)
            raise ChecksumMismatch(f"blob {blob.digest} downloaded with digest {actual}")
        os.replace(partial, path)

    # -- HTTP and auth -----------------------------------------------------------------------

    def _base(self, ref: Reference) -> str:
        host = api_host(ref.registry)
        scheme = "http" if is_loopback(host) or ref.registry in self._insecure else "https"
        return f"{scheme}://{host}/v2/{ref.repository}"

    async def _get(
        self, ref: Reference, url: str, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        assert self._session is not None, "use RegistryClient as an async context manager"
        key = (ref.registry, ref.repository)
        for attempt in (1, 2):
            sent = dict(headers)
            if key in self._tokens:
                sent["Authorization"] = self._tokens[key]
            try:
                response = await self._session.get(url, headers=sent)
            except aiohttp.ClientError as exc:
                raise RegistryError(f"cannot reach {ref.registry}: {exc}") from None
            if response.status != 401 or attempt == 2:
                return response
            challenge = response.headers.get("WWW-Authenticate", "")
            response.release()
            self._tokens[key] = await self._authorize(ref, challenge)
        raise AssertionError("unreachable")

    async def _authorize(self, ref: Reference, header: str) -> str:
        assert self._session is not None
        challenge = parse_challenge(header)
        creds = await self._credentials.get(ref.registry)
        basic = (
            "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            if creds else None
        )
        if challenge.scheme == "basic":
            if basic is None:
                raise RegistryError(
                    f"{ref.registry} requires a login",
                    hint="add credentials to ~/.docker/config.json (docker login)",
                )
            return basic
        if challenge.scheme != "bearer":
            raise RegistryError(f"unsupported registry auth scheme {challenge.scheme!r}")
        realm, query = token_query(challenge, ref.repository)
        if basic and not may_send_credentials(realm, self._insecure):
            raise RegistryError(
                f"{ref.registry} asks for your login at {realm}, which is not https: "
                "banger does not send credentials in cleartext",
                hint="check the registry's address; a trusted plain-http registry goes in "
                "`insecure_registries` in config",
            )
        try:
            headers = {"Authorization": basic} if basic else {}
            async with self._session.get(realm, params=query, headers=headers) as response:
                if response.status in (401, 403):
                    raise RegistryError(
                        f"{ref.registry} refused a token for {ref.repository}",
                        hint="check your credentials in ~/.docker/config.json, and that "
                        "the repository exists",
                    )
                self._check(response, "token")
                data = await response.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise RegistryError(f"cannot reach the token service {realm}: {exc}") from None
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token service {realm} returned no token")
        return f"Bearer {token}"

    @staticmethod
    def _check(response: aiohttp.ClientResponse, what: str) -> None:
        if response.status in (401, 403):
            raise RegistryError(
                f"access to the {what} denied ({response.status})",
                hint="check the reference; private images need credentials in "
                "~/.docker/config.json",
            )
        if response.status >= 400:
            raise RegistryError(f"the registry answered {response.status} for the {what}")


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body up to EOF or `limit` bytes: one read() returns only what has arrived, and a
    registry may send a manifest in several writes."""
    raw = b""
    while len(raw) < limit:
        chunk = await response.content.read(limit - len(raw))
        if not chunk:
            break
        raw += chunk
    return raw


class LayerProgress:
    """Turns byte counts of concurrent layer downloads into throttled progress events."""

    def __init__(self, manifest: Manifest, sink: ProgressSink) -> None:
        self._total = max(1, manifest.total_size)
        self._sizes = [layer.size for layer in manifest.layers]
        self._done = [0] * len(self._sizes)
        self._sink = sink
        self._last = [0.0] * len(self._sizes)

    def for_layer(self, index: int) -> Callable[[int], None]:
        def on_bytes(count: int) -> None:
            self._done[index] += count
            now = time.monotonic()
            finished = self._done[index] >= self._sizes[index]
            if not finished and now - self._last[index] < _PROGRESS_EVERY:
                return
            self._last[index] = now
            self._sink(ProgressEvent(
                STAGE,
                f"layer {index + 1}/{len(self._sizes)}: "
                f"{format_size(self._done[index])}/{format_size(self._sizes[index])}"
                + (" done" if finished else ""),
                0.6 * sum(self._done) / self._total,
            ))
        return on_bytes
