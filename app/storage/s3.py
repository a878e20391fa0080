"""Storage in an S3-compatible bucket (AWS S3, MinIO, R2) through boto3."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, ParamSpec, TypeVar, cast
from urllib.parse import parse_qs

import anyio
import anyio.to_thread
import boto3.session
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError, ClientError

from app.storage.base import (
    CHUNK_SIZE,
    MIN_PART_SIZE,
    ChunkStream,
    InvalidPart,
    InvalidRange,
    ObjectInfo,
    ObjectNotFound,
    PartTarget,
    StorageError,
    StoredPart,
    UploadNotFound,
    content_disposition,
    normalize_etag,
    validate_completion,
    validate_key,
    validate_part_number,
    validate_prefix,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        CORSRuleTypeDef,
        ObjectIdentifierTypeDef,
    )

log = logging.getLogger("peerpitch.storage")

P = ParamSpec("P")
T = TypeVar("T")

# Explicit timeouts and standard retries (DESIGN.md §2). Path-style addressing works with
# MinIO and custom endpoints without DNS tricks.
CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=60,
    retries={"max_attempts": 5, "mode": "standard"},
    signature_version="s3v4",
    s3={"addressing_style": "path"},
    # Several requests run at once from the thread pool; the default pool of 10 would churn.
    max_pool_connections=32,
    # Checksums only where S3 requires them: many S3-compatible stores reject the CRC32
    # headers newer botocore adds by default.
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
)
PUT_PART_SIZE = 8 * 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
# The key presigned once to learn the shape of this bucket's presigned GETs.
_PROBE_KEY = "presign-probe"
# Frozen credentials are reused this long (refreshable ones are refreshed at least 10 minutes
# before they expire, so they stay valid well past it).
_CREDENTIALS_REUSE_S = 60.0
_BAD_PART = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _GetShape(NamedTuple):
    """What every presigned GET of the bucket shares: the URL up to the key and the SigV4
    scope (region, service), as botocore's own presign of a probe key made them."""

    base: str
    region: str
    service: str


def _get_shape(probe_url: str) -> _GetShape | None:
    """The shape of a presigned GET of _PROBE_KEY; None if it is not the plain SigV4 query
    form (signed host header only) the fast path reproduces."""
    url, _, query = probe_url.partition("?")
    params = parse_qs(query)
    credential = params.get("X-Amz-Credential", [""])[0].split("/")
    if (
        not url.endswith("/" + _PROBE_KEY)
        or params.get("X-Amz-Algorithm") != ["AWS4-HMAC-SHA256"]
        or params.get("X-Amz-SignedHeaders") != ["host"]
        or len(credential) != 5
    ):
        return None
    return _GetShape(url[: -len(_PROBE_KEY)], credential[2], credential[3])


def _storage_error(exc: Exception) -> StorageError:
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        if code == "NoSuchUpload":
            return UploadNotFound(message)
        if code in _NOT_FOUND:
            return ObjectNotFound(message)
        if code == "InvalidRange":
            return InvalidRange(message)
        if code in _BAD_PART:
            return InvalidPart(f"{code}: {message}")
        return StorageError(f"S3 {code}: {message}")
    return StorageError(f"S3: {type(exc).__name__}: {exc}")


class S3Storage:
    kind: Literal["s3"] = "s3"
    list_page_size = 1000  # S3's maximum for ListParts and ListObjectsV2

    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        endpoint_url: str | None = None,
        part_size: int = PUT_PART_SIZE,
        client: S3Client | None = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.region = region
        self._part_size = part_size
        # A client of its own session: sessions are not thread-safe, clients are.
        self._session: boto3.session.Session | None = None
        if client is None:
            self._session = boto3.session.Session()
            client = self._session.client(
                "s3", region_name=region, endpoint_url=endpoint_url, config=CLIENT_CONFIG
            )
        self._client: S3Client = client
        # presign_get_fast's state: the bucket's GET shape (False: use presign_get), and
        # frozen credentials with the monotonic time they may be reused until.
        self._get_shape: _GetShape | Literal[False] | None = None
        self._frozen: ReadOnlyCredentials | None = None
        self._frozen_until = 0.0

    @property
    def client(self) -> S3Client:
        return self._client

    async def _run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking boto3 call in a worker thread, mapping its errors to ours."""
        try:
            return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
        except (ClientError, BotoCoreError, Boto3Error) as exc:
            raise _storage_error(exc) from exc

    async def check(self) -> None:
        await self._run(self._client.head_bucket, Bucket=self.bucket)

    async def ensure_bucket(
        self, cors_origins: list[str], *, allow_any_origin: bool = False
    ) -> None:
        """Create the bucket if missing and let browsers PUT parts and GET media from the
        given origins (any origin when the list is empty and allow_any_origin, meant for
        development), and GET media from any origin (see below). Idempotent."""
        origins = list(cors_origins) or (["*"] if allow_any_origin else [])

        def run() -> None:
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                    raise
                try:
                    if self.region == "us-east-1":  # the one region that refuses a constraint
                        self._client.create_bucket(Bucket=self.bucket)
                    else:
                        location = cast("BucketLocationConstraintType", self.region)
                        self._client.create_bucket(
                            Bucket=self.bucket,
                            CreateBucketConfiguration={"LocationConstraint": location},
                        )
                except ClientError as create_exc:
                    if _error_code(create_exc) != "BucketAlreadyOwnedByYou":
                        raise
            rules: list[CORSRuleTypeDef] = []
            if origins:
                rules.append(
                    {
                        "AllowedMethods": ["PUT", "GET", "HEAD"],
                        "AllowedOrigins": origins,
                        "AllowedHeaders": ["*"],
                        # Clients read each part's ETag to complete the upload.
                        "ExposeHeaders": ["ETag"],
                        "MaxAgeSeconds": 3600,
                    }
                )
            else:
                log.warning("no CORS origins for bucket %s: browsers cannot upload", self.bucket)
            if "*" not in origins:
                # HLS segment URLs answer 302 from the API to presigned GETs, and a browser
                # following a redirect from another origin sends `Origin: null`, which no
                # list of origins matches (hls.js would fail). The presigned URL is the
                # credential, so reading media is allowed from any origin.
                rules.append(
                    {
                        "AllowedMethods": ["GET", "HEAD"],
                        "AllowedOrigins": ["*"],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["Content-Length", "Content-Range", "ETag"],
                        "MaxAgeSeconds": 3600,
                    }
                )
            self._client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration={"CORSRules": rules})

        await self._run(run)

    # --- objects ---

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str | None = None
    ) -> int:
        """One PutObject for small bodies; otherwise a multipart upload of part_size parts,
        so memory stays at about one part."""
        validate_key(key)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        buffer = bytearray()
        total = 0
        upload_id: str | None = None
        parts: list[CompletedPartTypeDef] = []

        async def flush() -> None:
            nonlocal buffer
            assert upload_id is not None
            data, buffer = bytes(buffer), bytearray()
            number = len(parts) + 1
            response = await self._run(
                self._client.upload_part,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            )
            parts.append({"PartNumber": number, "ETag": response["ETag"]})

        try:
            async for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                if len(buffer) >= self._part_size:
                    if upload_id is None:
                        created = await self._run(
                            self._client.create_multipart_upload,
                            Bucket=self.bucket,
                            Key=key,
                            ContentType=content_type,
                        )
                        upload_id = created["UploadId"]
                    await flush()
            if upload_id is None:
                await self._run(
                    self._client.put_object,
                    Bucket=self.bucket,
                    Key=key,
                    Body=bytes(buffer),
                    ContentType=content_type,
                )
                return total
            if buffer:
                await flush()
            await self._run(
                self._client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            return total
        except BaseException:
            if upload_id is not None:
                # Unfinished uploads are billed until aborted.
                with anyio.CancelScope(shield=True):
                    try:
                        await self.abort_multipart(key, upload_id)
                    except StorageError:
                        log.warning("could not abort multipart upload %s of %s", upload_id, key)
            raise

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        validate_key(key)
        config = TransferConfig(
            multipart_threshold=self._part_size, multipart_chunksize=self._part_size
        )
        await self._run(
            self._client.upload_file,
            Filename=str(path),
            Bucket=self.bucket,
            Key=key,
            ExtraArgs={"ContentType": content_type or DEFAULT_CONTENT_TYPE},
            Config=config,
        )

    async def download_to(self, key: str, path: Path) -> None:
        validate_key(key)
        await self._run(self._client.download_file, Bucket=self.bucket, Key=key, Filename=str(path))

    async def stat(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            head = await self._run(self._client.head_object, Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return None
        return ObjectInfo(
            size=head["ContentLength"],
            etag=normalize_etag(head["ETag"]),
            content_type=head.get("ContentType"),
            last_modified=head["LastModified"],
        )

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        validate_key(key)
        if start < 0 or (end is not None and end < start):
            raise InvalidRange(f"invalid range {start}-{end}")
        if start == 0 and end is None:
            response = await self._run(self._client.get_object, Bucket=self.bucket, Key=key)
        else:
            response = await self._run(
                self._client.get_object,
                Bucket=self.bucket,
                Key=key,
                Range=f"bytes={start}-{'' if end is None else end}",
            )
        body = response["Body"]

        def read(size: int) -> bytes:
            try:
                return body.read(size)
            except BotoCoreError as exc:  # timeout or dropped connection mid-stream
                raise _storage_error(exc) from exc

        return ChunkStream(read, body.close, length=response["ContentLength"])

    async def delete(self, key: str) -> None:
        validate_key(key)
        await self._run(self._client.delete_object, Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix)

        def run() -> int:
            count = 0
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=prefix,
                PaginationConfig={"PageSize": self.list_page_size},
            )
            for page in pages:
                # A page holds at most 1000 keys: DeleteObjects' limit too.
                objects: list[ObjectIdentifierTypeDef] = [
                    {"Key": item["Key"]} for item in page.get("Contents", [])
                ]
                if not objects:
                    continue
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
                errors = response.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise StorageError(
                        f"could not delete {len(errors)} objects under {prefix!r}, "
                        f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                    )
                count += len(objects)
            return count

        return await self._run(run)

    async def presign_get(
        self,
        key: str,
        *,
        ttl_s: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        validate_key(key)
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if filename is not None:
            params["ResponseContentDisposition"] = content_disposition(filename)
        if content_type is not None:
            params["ResponseContentType"] = content_type
        # In a thread: the first call may resolve credentials over the network (IMDS).
        return await self._run(
            self._client.generate_presigned_url, "get_object", Params=params, ExpiresIn=ttl_s
        )

    async def presign_get_fast(self, key: str, *, ttl_s: int) -> str:
        """presign_get without response overrides, for hot paths (a segment per request):
        the same URL, about 4x cheaper and on the event loop. botocore's SigV4 query signer
        is applied to the bucket's URL shape, learnt once from botocore's own presign;
        credentials are frozen in a worker thread (they may refresh over the network) and
        reused for a minute. Falls back to presign_get for any other shape (an injected
        client, another signature version)."""
        validate_key(key)
        if self._get_shape is None:
            self._get_shape = await self._learn_get_shape()
        if self._get_shape is False:
            return await self.presign_get(key, ttl_s=ttl_s)
        shape = self._get_shape
        if self._frozen is None or time.monotonic() >= self._frozen_until:
            self._frozen = await self._run(self._freeze_credentials)
            self._frozen_until = time.monotonic() + _CREDENTIALS_REUSE_S
        request = AWSRequest(method="GET", url=shape.base + key)
        try:
            auth = S3SigV4QueryAuth(self._frozen, shape.service, shape.region, expires=ttl_s)
            auth.add_auth(request)
        except BotoCoreError as exc:
            raise _storage_error(exc) from exc
        return str(request.prepare().url)

    async def _learn_get_shape(self) -> _GetShape | Literal[False]:
        if self._session is None:
            return False
        probe = await self.presign_get(_PROBE_KEY, ttl_s=60)
        return _get_shape(probe) or False

    def _freeze_credentials(self) -> ReadOnlyCredentials:
        credentials = self._session.get_credentials() if self._session is not None else None
        if credentials is None:
            raise StorageError("S3: no credentials to sign URLs with")
        return credentials.get_frozen_credentials()

    async def presign_get_many(self, keys: list[str], *, ttl_s: int) -> list[str]:
        """Presigned GETs for many keys in one worker-thread hop (signing is local work)."""
        for key in keys:
            validate_key(key)

        def run() -> list[str]:
            return [
                self._client.generate_presigned_url(
                    "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_s
                )
                for key in keys
            ]

        return await self._run(run)

    async def sha256(self, key: str) -> str:
        validate_key(key)

        def run() -> str:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            digest = hashlib.sha256()
            with body:
                for block in body.iter_chunks(CHUNK_SIZE):
                    digest.update(block)
            return digest.hexdigest()

        return await self._run(run)

    # --- multipart (clients PUT parts straight to the bucket) ---

    async def create_multipart(self, key: str, *, content_type: str | None) -> str:
        validate_key(key)
        response = await self._run(
            self._client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            ContentType=content_type or DEFAULT_CONTENT_TYPE,
        )
        return response["UploadId"]

    async def presign_part(
        self, key: str, multipart_id: str, part_number: int, *, ttl_s: int
    ) -> PartTarget | None:
        validate_key(key)
        validate_part_number(part_number)
        url = await self._run(
            self._client.generate_presigned_url,
            "upload_part",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "UploadId": multipart_id,
                "PartNumber": part_number,
            },
            ExpiresIn=ttl_s,
            HttpMethod="PUT",
        )
        return PartTarget(url=url, method="PUT", headers={})

    async def write_part(
        self,
        key: str,
        multipart_id: str,
        part_number: int,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
    ) -> StoredPart:
        raise NotImplementedError("S3 parts go from the client straight to the bucket")

    async def list_parts(self, key: str, multipart_id: str) -> list[StoredPart]:
        validate_key(key)

        def run() -> list[StoredPart]:
            pages = self._client.get_paginator("list_parts").paginate(
                Bucket=self.bucket,
                Key=key,
                UploadId=multipart_id,
                PaginationConfig={"PageSize": self.list_page_size},
            )
            return [
                StoredPart(
                    number=part["PartNumber"], size=part["Size"], etag=normalize_etag(part["ETag"])
                )
                for page in pages
                for part in page.get("Parts", [])
            ]

        return sorted(await self._run(run), key=lambda part: part.number)

    async def complete_multipart(
        self, key: str, multipart_id: str, parts: list[tuple[int, str]]
    ) -> None:
        validate_key(key)
        validate_completion(parts)
        completed: list[CompletedPartTypeDef] = [
            {"PartNumber": number, "ETag": f'"{normalize_etag(etag)}"'} for number, etag in parts
        ]
        await self._run(
            self._client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            UploadId=multipart_id,
            MultipartUpload={"Parts": completed},
        )

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        validate_key(key)
        with contextlib.suppress(UploadNotFound):
            await self._run(
                self._client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=multipart_id,
            )

    async def reopen_multipart(self, key: str, *, part_size: int, content_type: str | None) -> str:
        if part_size < 1:
            raise ValueError("part_size must be positive")
        info = await self.stat(key)
        if info is None:
            raise ObjectNotFound(key)
        size = info.size
        count = max(1, -(-size // part_size))
        validate_part_number(count)
        upload_id = await self.create_multipart(key, content_type=content_type)

        def run() -> None:
            for number in range(1, count + 1):
                start = (number - 1) * part_size
                span = f"bytes={start}-{min(size, start + part_size) - 1}"
                if size > MIN_PART_SIZE:
                    # Server-side copy; S3 only copies ranges of objects over 5 MB.
                    self._client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": key},
                        CopySourceRange=span,
                        CopySourceIfMatch=f'"{info.etag}"',
                    )
                    continue
                data = b""  # an empty object is one empty part
                if size:  # small: at most 5 MiB in memory
                    response = self._client.get_object(Bucket=self.bucket, Key=key, Range=span)
                    with response["Body"] as body:
                        data = body.read()
                self._client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                )

        try:
            await self._run(run)
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(StorageError):
                await self.abort_multipart(key, upload_id)
            raise
        return upload_id
