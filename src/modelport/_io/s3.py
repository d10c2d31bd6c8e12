"""S3 clients and URLs, for every room (sources read from a bucket, uploads write to one)."""

from __future__ import annotations

from typing import Any

from modelport._io.urls import endpoint, location
from modelport.errors import InputError, MissingDependencyError, StorageError


def parse_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at either end)."""
    location(url, what="URL", stores=("s3",))
    if not url.startswith("s3://"):
        raise InputError(f"not an s3:// URL: {url!r}", hint="e.g. s3://bucket/models/llama")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise InputError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


def s3_client(endpoint_url: str | None = None, region: str | None = None,
              profile: str | None = None, retries: int = 5, pool: int = 16) -> Any:
    """A boto3 S3 client; credentials the way boto3 users expect (environment, profile),
    never inside the endpoint URL."""
    endpoint_url = endpoint(endpoint_url)
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:
        raise MissingDependencyError("boto3", "s3") from e
    try:
        session = boto3.session.Session(profile_name=profile)
        return session.client("s3", endpoint_url=endpoint_url, region_name=region,
                          config=Config(retries={"max_attempts": retries + 1,
                                                 "mode": "standard"},
                                        max_pool_connections=pool,
                                        connect_timeout=10, read_timeout=120))
    except Exception as e:  # an unknown profile, an endpoint botocore cannot parse
        raise storage_error(e, endpoint_url or "s3://", "connect") from e


def storage_error(e: Exception, url: str, op: str) -> StorageError:
    """One line for a failed store operation: the error code and message, a hint that names
    a next step; botocore's internals never reach the user, credentials are redacted."""
    try:
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )
    except ImportError:  # fsspec stores without boto3
        ClientError = EndpointConnectionError = NoCredentialsError = ()  # type: ignore[assignment,misc]

    if isinstance(e, ClientError):
        code = str(e.response.get("Error", {}).get("Code", ""))
        hints = {
            "NoSuchBucket": "create the bucket first, or check its name",
            "404": "create the bucket first, or check its name",
            "InvalidAccessKeyId": "check AWS_ACCESS_KEY_ID / the profile's HMAC keys",
            "SignatureDoesNotMatch": "check AWS_SECRET_ACCESS_KEY / the profile's HMAC keys",
            "AccessDenied": "the credentials may not write to this bucket",
            "403": "check the credentials and the bucket's permissions",
        }
        return StorageError(f"{code or 'error'}: {e.response.get('Error', {}).get('Message', e)}",
                            url=url, op=op, hint=hints.get(code, "see the store's documentation"))
    if isinstance(e, NoCredentialsError):
        return StorageError("no credentials", url=url, op=op,
                            hint="set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    if isinstance(e, EndpointConnectionError):
        return StorageError("endpoint unreachable", url=url, op=op,
                            hint="check --endpoint-url and the network")
    if isinstance(e, StorageError):
        return e
    # anything else from botocore or the network: its first line, never its internals
    first = (str(e).strip().splitlines() or [""])[0][:300]
    return StorageError(f"{type(e).__name__}: {first}", url=url, op=op,
                        hint="check the URL, --endpoint-url and the credentials")


__all__ = ["parse_s3", "s3_client", "storage_error"]
