"""The web page's Content-Security-Policy names exactly where the app may fetch from."""

from __future__ import annotations

from app.config import Settings
from app.web.router import content_security_policy


def directives(settings: Settings) -> dict[str, set[str]]:
    policy = content_security_policy(settings)
    return {d.split()[0]: set(d.split()[1:]) for d in policy.split("; ")}


def test_local_media_comes_from_the_api_itself() -> None:
    d = directives(Settings(storage="local", public_base_url="https://api.example.com/base"))
    assert d["connect-src"] == {"'self'", "https://api.example.com"}
    assert d["media-src"] == {"'self'", "blob:", "data:", "https://api.example.com"}
    assert d["script-src"] == {"'self'"} and d["style-src"] == {"'self'"}
    assert d["default-src"] == {"'none'"} and d["frame-ancestors"] == {"'none'"}


def test_s3_media_adds_the_bucket_endpoint() -> None:
    aws = directives(Settings(storage="s3", s3_region="eu-west-1"))
    assert aws["connect-src"] == {"'self'", "https://s3.eu-west-1.amazonaws.com"}
    minio = directives(Settings(storage="s3", s3_endpoint_url="http://minio.internal:9000/"))
    assert minio["img-src"] == {"'self'", "data:", "http://minio.internal:9000"}
