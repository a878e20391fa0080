"""What only the S3 adapter does: bucket setup, presigned parts, error mapping."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import botocore.auth
import httpx
import pytest

from app.storage import S3Storage, StorageError, UploadNotFound
from app.storage.s3 import CLIENT_CONFIG, _get_shape
from tests.fixtures.s3 import S3_REGION
from tests.storage.helpers import chunked

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def test_client_config(s3_storage: S3Storage) -> None:
    config: Any = s3_storage.client.meta.config  # the stubs do not declare its options
    assert (config.connect_timeout, config.read_timeout) == (5, 60)
    # botocore normalises "max_attempts: 5 retries" to 6 attempts in all.
    assert config.retries == {"mode": "standard", "total_max_attempts": 6}
    assert config.s3 == {"addressing_style": "path"}
    assert getattr(CLIENT_CONFIG, "signature_version", None) == "s3v4"


async def test_check(s3_storage: S3Storage, s3_endpoint: str) -> None:
    await s3_storage.check()
    missing = S3Storage(bucket="no-such-bucket", region=S3_REGION, endpoint_url=s3_endpoint)
    with pytest.raises(StorageError):
        await missing.check()


async def test_ensure_bucket(
    s3_endpoint: str, s3_client: S3Client, http: httpx.AsyncClient
) -> None:
    name = f"ensure-{uuid.uuid4().hex[:12]}"
    storage = S3Storage(bucket=name, region=S3_REGION, endpoint_url=s3_endpoint)
    try:
        await storage.ensure_bucket(["https://app.example"])
        await storage.ensure_bucket(["https://app.example"])  # idempotent
        await storage.check()
        upload, read = s3_client.get_bucket_cors(Bucket=name)["CORSRules"]
        assert upload["AllowedOrigins"] == ["https://app.example"]
        assert sorted(upload["AllowedMethods"]) == ["GET", "HEAD", "PUT"]
        assert upload["ExposeHeaders"] == ["ETag"]
        # Reading media from anywhere: a browser that followed the API's segment redirect
        # from the app's origin sends `Origin: null`.
        assert read["AllowedOrigins"] == ["*"]
        assert sorted(read["AllowedMethods"]) == ["GET", "HEAD"]
        await storage.put_stream("v0/seg_00001.m4s", chunked(b"segment"))
        url = await storage.presign_get("v0/seg_00001.m4s", ttl_s=60)
        got = await http.get(url, headers={"Origin": "null"})
        assert got.status_code == 200 and got.content == b"segment"
        assert got.headers["access-control-allow-origin"] in ("*", "null")

        await storage.ensure_bucket([], allow_any_origin=True)
        [rule] = s3_client.get_bucket_cors(Bucket=name)["CORSRules"]
        assert rule["AllowedOrigins"] == ["*"]
        assert "PUT" in rule["AllowedMethods"]

        await storage.ensure_bucket([])  # production without origins: no uploads, reads
        [rule] = s3_client.get_bucket_cors(Bucket=name)["CORSRules"]
        assert rule["AllowedOrigins"] == ["*"]
        assert "PUT" not in rule["AllowedMethods"]
    finally:
        s3_client.delete_object(Bucket=name, Key="v0/seg_00001.m4s")
        s3_client.delete_bucket(Bucket=name)


async def test_ensure_bucket_other_region(s3_endpoint: str, s3_client: S3Client) -> None:
    name = f"ensure-{uuid.uuid4().hex[:12]}"
    storage = S3Storage(bucket=name, region="eu-west-1", endpoint_url=s3_endpoint)
    try:
        await storage.ensure_bucket([], allow_any_origin=False)
        await storage.ensure_bucket([], allow_any_origin=False)
        location = s3_client.get_bucket_location(Bucket=name)["LocationConstraint"]
        assert location == "eu-west-1"
    finally:
        s3_client.delete_bucket(Bucket=name)


async def test_presign_part_target(s3_storage: S3Storage, http: httpx.AsyncClient) -> None:
    mid = await s3_storage.create_multipart("k.bin", content_type="video/mp4")
    target = await s3_storage.presign_part("k.bin", mid, 3, ttl_s=120)
    assert target is not None
    assert target.method == "PUT"
    assert "partNumber=3" in target.url and f"uploadId={mid}" in target.url
    assert "X-Amz-Expires=120" in target.url
    response = await http.put(target.url, content=b"abc")
    assert response.status_code == 200
    [part] = await s3_storage.list_parts("k.bin", mid)
    assert (part.number, part.size) == (3, 3)


async def test_listings_paginate(
    s3_storage: S3Storage, s3_client: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_storage, "list_page_size", 2)
    mid = await s3_storage.create_multipart("many.bin", content_type=None)
    for number in range(1, 6):
        s3_client.upload_part(
            Bucket=s3_storage.bucket, Key="many.bin", UploadId=mid, PartNumber=number, Body=b"p"
        )
    parts = await s3_storage.list_parts("many.bin", mid)
    assert [p.number for p in parts] == [1, 2, 3, 4, 5]

    for i in range(5):
        s3_client.put_object(Bucket=s3_storage.bucket, Key=f"d/{i}", Body=b"x")
    assert await s3_storage.delete_prefix("d/") == 5
    assert s3_client.list_objects_v2(Bucket=s3_storage.bucket, Prefix="d/")["KeyCount"] == 0


async def test_write_part_is_not_for_s3(s3_storage: S3Storage) -> None:
    mid = await s3_storage.create_multipart("k.bin", content_type=None)
    with pytest.raises(NotImplementedError):
        await s3_storage.write_part("k.bin", mid, 1, chunked(b"x"), max_bytes=10)


async def test_unknown_upload(s3_storage: S3Storage) -> None:
    with pytest.raises(UploadNotFound):
        await s3_storage.list_parts("k.bin", "not-an-upload")
    await s3_storage.abort_multipart("k.bin", "not-an-upload")


async def test_put_stream_multipart_keeps_content_type(
    s3_storage: S3Storage, s3_client: S3Client
) -> None:
    data = b"v" * (9 * 1024 * 1024)
    await s3_storage.put_stream("big.mp4", chunked(data, 1024 * 1024), content_type="video/mp4")
    head = s3_client.head_object(Bucket=s3_storage.bucket, Key="big.mp4")
    assert head["ContentType"] == "video/mp4"
    assert head["ETag"].strip('"').endswith("-2")  # two parts: 8 MiB + 1 MiB
    assert s3_client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []


@pytest.mark.parametrize(
    ("region", "session_token"),
    [(S3_REGION, None), ("eu-west-1", None), (S3_REGION, "the-session-token")],
)
async def test_fast_presign_is_botocores_presign(
    s3_endpoint: str,
    s3_bucket: str,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    region: str,
    session_token: str | None,
) -> None:
    if session_token is not None:  # temporary credentials: the token is signed in the query
        monkeypatch.setenv("AWS_SESSION_TOKEN", session_token)
    storage = S3Storage(bucket=s3_bucket, region=region, endpoint_url=s3_endpoint)
    await storage.put_stream("v0/seg_00001.m4s", chunked(b"segment"))
    # The same instant for both (botocore signs with the current time, to the second).
    instant = datetime(2026, 3, 4, 5, 6, 7)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_a, **_k: instant)
    for ttl_s in (1, 120):
        slow = await storage.presign_get("v0/seg_00001.m4s", ttl_s=ttl_s)
        fast = await storage.presign_get_fast("v0/seg_00001.m4s", ttl_s=ttl_s)
        assert fast == slow
        assert f"X-Amz-Expires={ttl_s}&" in fast and "X-Amz-Date=20260304T050607Z" in fast
        assert f"%2F{region}%2Fs3%2F" in fast
        if session_token is not None:
            assert f"X-Amz-Security-Token={session_token}" in fast
    assert storage._get_shape, "the fast path fell back to botocore's presign"
    got = await http.get(fast)
    assert got.status_code == 200 and got.content == b"segment"


async def test_fast_presign_falls_back_without_a_known_shape(
    s3_bucket: str, s3_client: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    instant = datetime(2026, 3, 4, 5, 6, 7)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_a, **_k: instant)
    # A client given from outside: its credentials are not ours to freeze.
    storage = S3Storage(bucket=s3_bucket, region=S3_REGION, client=s3_client)
    fast = await storage.presign_get_fast("k.bin", ttl_s=60)
    assert fast == await storage.presign_get("k.bin", ttl_s=60)
    # Only the plain SigV4 query form is reproduced.
    assert _get_shape("http://h/b/presign-probe?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
                      "X-Amz-Credential=AK%2F20260304%2Fus-east-1%2Fs3%2Faws4_request&"
                      "X-Amz-SignedHeaders=host&X-Amz-Signature=00") == (
        "http://h/b/", "us-east-1", "s3")  # fmt: skip
    assert _get_shape("http://h/b/presign-probe?AWSAccessKeyId=AK&Signature=x") is None
    assert _get_shape("http://h/b/presign-probe?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
                      "X-Amz-Credential=AK%2F20260304%2Fus-east-1%2Fs3%2Faws4_request&"
                      "X-Amz-SignedHeaders=host%3Bx-amz-acl") is None  # fmt: skip
