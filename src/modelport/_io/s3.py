"""S3 clients and URLs, for every room (sources read from a bucket, uploads write to one)."""

from __future__ import annotations

from typing import Any

from modelport.errors import InputError, MissingDependencyError


def parse_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at either end)."""
    if not url.startswith("s3://"):
        raise InputError(f"not an s3:// URL: {url!r}", hint="e.g. s3://bucket/models/llama")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise InputError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


def s3_client(endpoint_url: str | None = None, region: str | None = None,
              profile: str | None = None, retries: int = 5, pool: int = 16) -> Any:
    """A boto3 S3 client; credentials the way boto3 users expect (environment, profile)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:
        raise MissingDependencyError("boto3", "s3") from e
    session = boto3.session.Session(profile_name=profile)
    return session.client("s3", endpoint_url=endpoint_url, region_name=region,
                          config=Config(retries={"max_attempts": retries + 1,
                                                 "mode": "standard"},
                                        max_pool_connections=pool,
                                        connect_timeout=10, read_timeout=120))


__all__ = ["parse_s3", "s3_client"]
