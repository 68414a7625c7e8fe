"""moto's S3 server on 127.0.0.1 and the AWS environment that points clients at it, for the S3
tests (the DVC remote, the Parquet lake). Only S3-remote projects have moto (the dev group)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

REGION = "{{ cookiecutter.aws_region }}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "NO_PROXY": "127.0.0.1",
        "DVC_NO_ANALYTICS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        monkeypatch.delenv(key, raising=False)
    return dict(os.environ)
