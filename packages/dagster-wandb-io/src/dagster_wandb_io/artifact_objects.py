"""The offline store of record: artifacts as content-addressed objects in S3-compatible storage.

With DAGSTER_WANDB_IO_STORE_URL (``s3://<bucket>/<prefix>``), an offline write uploads its
cache entry here before the index names it, and a host whose cache lacks an entry fetches it
from here; each host's cache volume is then only a cache. Layout::

    <prefix>/<entity>/<project>/<name>/<digest>/files/<path>   each file, uploaded first
    <prefix>/<entity>/<project>/<name>/<digest>/entry.json     the manifest, uploaded last

An entry exists once its manifest does, and each S3 object appears whole or not at all, so no
reader ever sees half an entry. Objects are never rewritten: the digest names the content, so
a second writer of the same content finds the manifest and uploads nothing. The endpoint and
credentials are boto3's own (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .cache import CacheEntry, EntryManifest
from .errors import CacheCorruptionError, ConfigurationError, WandbArtifactsIOManagerError
from .fsutil import MAX_JSON_BYTES, UnreadableFile, read_capped

STORE_URL_ENV = "DAGSTER_WANDB_IO_STORE_URL"
# How long a request keeps retrying a store that does not answer (a restart, a network blip)
# before the step fails with the store's error.
RETRY_SECONDS_ENV = "DAGSTER_WANDB_IO_STORE_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 90.0
_TRANSIENT_CODES = {"500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown"}
MANIFEST = "entry.json"


class ObjectStoreUnavailable(WandbArtifactsIOManagerError):
    """The object store did not answer, or refused the request."""


class ObjectStore:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigurationError(
                f"{STORE_URL_ENV}={url!r} is not an s3://<bucket>/<prefix> URL. Set it to the"
                " bucket (and folder) that holds the offline artifacts, e.g."
                " s3://mlplatform/wandb-artifacts."
            )
        self.url = url.rstrip("/")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")

    @functools.cached_property
    def client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigurationError(
                f"{STORE_URL_ENV} is set but boto3 is not installed: install"
                " dagster-wandb-io[object-store]."
            ) from None
        return boto3.client(
            "s3",
            config=Config(
                # Quick retries here; the long wait for a restarting store is _retrying's.
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=5,
                read_timeout=120,
            ),
        )

    def _key(self, entity: str, project: str, name: str, digest: str, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, entity, project, name, digest, *parts) if p)

    def _failed(self, action: str, key: str, error: Exception) -> ObjectStoreUnavailable:
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
        return ObjectStoreUnavailable(
            f"Could not {action} s3://{self.bucket}/{key} at {endpoint} ({error}). The object"
            " store is the offline store of record; check that it is up and that its"
            " credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) are the store's, then retry"
            " the step. Nothing half-written is ever read: an entry exists only once its"
            " manifest is uploaded, after its files."
        )

    def _retrying(self, call: Any) -> Any:
        """`call()`, again with backoff while the store does not answer, up to the deadline."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        deadline = time.monotonic() + retry_seconds()
        delay = 0.25
        while True:
            try:
                return call()
            except (
                EndpointConnectionError,
                ConnectionClosedError,
                ConnectTimeoutError,
                ReadTimeoutError,
                ClientError,
            ) as error:
                transient = not isinstance(error, ClientError) or (
                    error.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
                )
                if not transient or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _missing(self, error: Exception) -> bool:
        from botocore.exceptions import ClientError

        return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in (
            "404",
            "NoSuchKey",
            "NotFound",
        )

    def manifest(self, entity: str, project: str, name: str, digest: str) -> EntryManifest | None:
        """The stored entry's manifest, checked against its digest; None if not stored."""
        key = self._key(entity, project, name, digest, MANIFEST)
        try:
            body = self._retrying(
                lambda: read_capped(
                    self.client.get_object(Bucket=self.bucket, Key=key)["Body"],
                    MAX_JSON_BYTES,
                    f"s3://{self.bucket}/{key}",
                )
            )
        except UnreadableFile as error:
            raise CacheCorruptionError(
                f"The object store's manifest is not one this package wrote ({error}). Delete"
                " it so the next write of that content uploads it again."
            ) from None
        except Exception as error:
            if self._missing(error):
                return None
            raise self._failed("read", key, error) from error
        try:
            manifest = EntryManifest.from_json(json.loads(body))
        except (ValueError, KeyError, TypeError) as error:
            raise CacheCorruptionError(
                f"The object store's manifest s3://{self.bucket}/{key} is unreadable ({error})."
                " Delete it so the next write of that content uploads it again."
            ) from None
        if manifest.digest != digest or manifest.computed_digest() != digest:
            raise CacheCorruptionError(
                f"The object store's manifest s3://{self.bucket}/{key} does not match its digest"
                f" {digest}: it was altered. Delete it so the next write uploads it again."
            )
        return manifest

    def manifest_url(self, entity: str, project: str, name: str, digest: str) -> str:
        return f"s3://{self.bucket}/{self._key(entity, project, name, digest, MANIFEST)}"

    def has(self, entity: str, project: str, name: str, digest: str) -> bool:
        key = self._key(entity, project, name, digest, MANIFEST)
        try:
            self._retrying(lambda: self.client.head_object(Bucket=self.bucket, Key=key))
            return True
        except Exception as error:
            if self._missing(error):
                return False
            raise self._failed("check", key, error) from error

    def upload(self, entry: CacheEntry, manifest: EntryManifest) -> int:
        """Upload a committed cache entry unless it is stored already; bytes uploaded."""
        if self.has(entry.entity, entry.project, entry.name, entry.digest):
            return 0
        sent = 0
        for path, record in sorted(manifest.files.items()):
            key = self._key(entry.entity, entry.project, entry.name, entry.digest, "files", path)
            try:
                self._retrying(lambda: self._put_file(entry.file_path(path), key, record.md5))  # noqa: B023
            except Exception as error:
                raise self._failed("upload", key, error) from error
            sent += record.size
        key = self._key(entry.entity, entry.project, entry.name, entry.digest, MANIFEST)
        stored = {**manifest.to_json(), "origin": "stored"}
        try:
            body = json.dumps(stored, sort_keys=True).encode()
            self._retrying(lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=body))
        except Exception as error:
            raise self._failed("upload", key, error) from error
        return sent

    def _put_file(self, source: Path, key: str, md5_b64: str) -> None:
        # Content-MD5: the store refuses a body that arrives different from what was sent.
        # One PUT per file (S3's limit is 5 GiB; larger files would need a multipart upload).
        with open(source, "rb") as body:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentMD5=md5_b64)

    def download(
        self, entity: str, project: str, name: str, digest: str, path: str, dest: Path
    ) -> int:
        key = self._key(entity, project, name, digest, "files", path)
        try:
            self._retrying(lambda: self.client.download_file(self.bucket, key, str(dest)))
        except Exception as error:
            if self._missing(error):
                raise CacheCorruptionError(
                    f"The object store has the manifest of {entity}/{project}/{name}@{digest}"
                    f" but not its file {path!r} (s3://{self.bucket}/{key}): it was deleted."
                    " Re-materialize the producing asset."
                ) from None
            raise self._failed("download", key, error) from error
        return dest.stat().st_size


def retry_seconds() -> float:
    raw = os.environ.get(RETRY_SECONDS_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_RETRY_SECONDS
        if value < 0:
            raise ValueError
    except ValueError:
        raise ConfigurationError(
            f"{RETRY_SECONDS_ENV}={raw!r} is not a number of seconds."
        ) from None
    return value


def from_environment() -> ObjectStore | None:
    url = os.environ.get(STORE_URL_ENV, "").strip()
    return ObjectStore(url) if url else None
