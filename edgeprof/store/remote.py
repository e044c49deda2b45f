"""Where a fleet lives: an ``s3://bucket/prefix`` URL (AWS S3, MinIO, Ceph, Garage: any S3 API) or a folder path (a
shared or mounted folder), opened as one fsspec filesystem, and the faults of object storage turned into one sentence
each.

Credentials and the endpoint come only from the standard AWS environment and config (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws/config``), which botocore reads for s3fs;
edgeprof has no settings of its own for them. s3fs and fsspec are used rather than hand-written S3 calls: they sign
requests, page listings, upload large objects in parts (an object appears only once its upload completed) and DuckDB
can read through them (``DuckDBPyConnection.register_filesystem``) where its own httpfs extension cannot be loaded.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import StorageError, UsageError

ENV_FLEET = "EDGEPROF_FLEET"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=-]*")
_GLOB = set("*?[]{}'\"\\")
URL_HELP = "Give s3://BUCKET/PREFIX (e.g. s3://lab-runs/class-a) or a folder path (e.g. /mnt/shared/edgeprof-fleet)."


def fleet_url(explicit: str | None = None) -> str | None:
    """The fleet URL in use: ``explicit``, else ``$EDGEPROF_FLEET``, else None (no fleet). Here, not in ``fleet``,
    so that `devices` without a fleet does not load pandas."""
    return explicit or os.environ.get(ENV_FLEET) or None


class FleetError(StorageError):
    """The fleet's storage cannot be reached, read or written: the sentence says what to do; nothing local changed."""


@dataclass(frozen=True)
class Target:
    """A parsed fleet URL. ``root`` is the path the filesystem takes (``bucket/prefix`` or an absolute folder);
    ``uri`` is what DuckDB reads (``s3://bucket/prefix`` or the folder)."""

    url: str
    kind: str  # "s3" | "folder"
    root: str
    bucket: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.root}" if self.kind == "s3" else self.root

    def join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def uri_of(self, path: str) -> str:
        """The DuckDB name of a filesystem path under ``root``."""
        return f"s3://{path}" if self.kind == "s3" else path


def parse_url(url: str) -> Target:
    """``s3://bucket/prefix`` (a bucket name as S3 allows; prefix parts of letters, digits, ``_.=-``) or a folder path
    (``file://`` allowed); anything else is a UsageError naming the two forms. Quotes and glob characters are refused
    in both, since DuckDB expands globs in the paths it is given."""
    text = str(url or "").strip()
    if not text:
        raise UsageError("no fleet URL was given.", URL_HELP)
    if text.startswith("s3://"):
        rest = text[5:].strip("/")
        bucket, _, prefix = rest.partition("/")
        if not _BUCKET.fullmatch(bucket or "") or ".." in bucket:
            raise UsageError(f"{text!r} does not name a bucket as S3 allows (3-63 lower-case letters, digits, '.' "
                             "and '-').", URL_HELP)
        parts = [p for p in prefix.split("/") if p]
        bad = next((p for p in parts if not _PREFIX_PART.fullmatch(p)), None)
        if bad is not None:
            raise UsageError(f"the prefix part {bad!r} of {text!r} is not letters, digits, '_', '.', '=' or '-'.",
                             URL_HELP)
        return Target(text, "s3", "/".join([bucket, *parts]), bucket)
    if text.startswith("file://"):
        text = text[7:]
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise UsageError(f"{url!r} is neither an s3:// URL nor a folder path.", URL_HELP)
    if _GLOB & set(text):
        raise UsageError(f"the folder path {text!r} holds a quote, backslash or glob character ({' '.join(sorted(_GLOB))}).",
                         "Use a folder whose path has none of them.")
    return Target(str(url), "folder", str(Path(text).expanduser().absolute()))


def filesystem(target: Target):
    """An fsspec filesystem for the target: s3fs with botocore's own credential chain and endpoint, bounded
    connection timeouts and few retries (an unreachable store is said within seconds), or the local one."""
    if target.kind == "folder":
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem()
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                             config_kwargs={"connect_timeout": 5, "read_timeout": 60,
                                            "retries": {"max_attempts": 2, "mode": "standard"}})


def endpoint_shown() -> str:
    """Where requests go, for messages: ``$AWS_ENDPOINT_URL`` or AWS S3 itself."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3 (no AWS_ENDPOINT_URL)"


def explain(err: BaseException, target: Target, doing: str) -> FleetError:
    """One sentence for a fault of the store (``doing``: "push to", "read"), with what to do; the library's own text
    is kept as ``detail``."""
    name = type(err).__name__
    text = str(err)
    code = ""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    lowered = text.lower()
    where = target.url
    if name in ("NoCredentialsError", "PartialCredentialsError") or "unable to locate credentials" in lowered:
        return FleetError(f"cannot {doing} {where}: no AWS credentials were found.",
                          "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for the bucket.", text)
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken",
                "ExpiredToken") or isinstance(err, PermissionError) or "access denied" in lowered \
            or "invalidaccesskeyid" in lowered or "signaturedoesnotmatch" in lowered or "forbidden" in lowered:
        what = "the storage refused the credentials or this access"
        hint = ("Check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that they may list, read and "
                "write the bucket.") if target.kind == "s3" else "Check the folder's permissions."
        return FleetError(f"cannot {doing} {where}: {what}.", hint, text)
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError",
                "ClientConnectorError", "ServerDisconnectedError") or "could not connect" in lowered \
            or isinstance(err, (ConnectionError, TimeoutError)):
        return FleetError(f"cannot {doing} {where}: the storage at {endpoint_shown()} does not answer.",
                          "Check the network and AWS_ENDPOINT_URL, then run the command again (nothing was marked "
                          "pushed).", text)
    if code == "NoSuchBucket" or "bucket does not exist" in lowered or "nosuchbucket" in lowered:
        return FleetError(f"cannot {doing} {where}: the bucket {target.bucket} does not exist at {endpoint_shown()}.",
                          "Create it (or ask for it), or check the bucket name and AWS_ENDPOINT_URL.", text)
    if target.kind == "folder" and isinstance(err, FileNotFoundError):
        return FleetError(f"cannot {doing} {where}: the folder does not exist.",
                          "Create it (or mount the shared folder) first.", text)
    if isinstance(err, OSError) and getattr(err, "errno", None) in (28, 122):
        return FleetError(f"cannot {doing} {where}: the storage is full.", "Free space there and push again.", text)
    return FleetError(f"cannot {doing} {where}: the storage answered {name}"
                      + (f" ({code})" if code else "") + ".",
                      "Check the URL, the credentials and AWS_ENDPOINT_URL; run with --debug for the details.", text)


@contextlib.contextmanager
def faults(target: Target, doing: str) -> Iterator[None]:
    """Turn the store's exceptions raised inside the block into a FleetError (edgeprof's own errors pass)."""
    from ..errors import EdgeprofError

    try:
        yield
    except EdgeprofError:
        raise
    except Exception as err:  # botocore, aiohttp and OSError families: judged by explain
        raise explain(err, target, doing) from None
