"""Shared helpers for the local-AWS scripts: loopback-only boto3 clients against the moto emulator.

Importing this module pins the process environment to test credentials and the given endpoint *before*
boto3 is imported, so no profile, real credential, instance metadata or remote endpoint can leak in.
"""
import os
import sys
from urllib.parse import urlparse

ACCOUNT = "123456789012"
REGION = "us-east-1"

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def check_endpoint(endpoint: str) -> str:
    """Refuse anything that is not http(s) on a loopback host."""
    u = urlparse(endpoint)
    if u.scheme not in ("http", "https") or u.hostname not in _LOOPBACK_HOSTS or not u.port:
        sys.exit(f"refusing endpoint {endpoint!r}: only http://127.0.0.1:PORT (loopback) is allowed")
    return endpoint.rstrip("/")


def pin_env(endpoint: str) -> None:
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_SECURITY_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_DEFAULT_PROFILE", None)
    os.environ.pop("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", None)
    os.environ.pop("AWS_CONTAINER_CREDENTIALS_FULL_URI", None)
    os.environ.pop("AWS_WEB_IDENTITY_TOKEN_FILE", None)
    os.environ.pop("AWS_ROLE_ARN", None)
    os.environ.update(
        {
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
    )
    # Never route loopback through a proxy.
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(k, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"


def session(endpoint: str):
    endpoint = check_endpoint(endpoint)
    pin_env(endpoint)
    import boto3  # noqa: E402  (imported only after the environment is pinned)

    return boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=REGION,
    )


def client(sess, service: str, endpoint: str, region: str = REGION):
    from botocore.config import Config

    return sess.client(
        service,
        region_name=region,
        endpoint_url=check_endpoint(endpoint),
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )
