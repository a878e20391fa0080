"""Storage in a local folder; its "presigned" URLs are HMAC-signed URLs served by the API."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import quote, urlencode

import anyio
import anyio.to_thread

from app.storage.base import (
    CHUNK_SIZE,
    MIN_PART_SIZE,
    ChunkStream,
    InvalidKey,
    InvalidPart,
    ObjectInfo,
    ObjectNotFound,
    PartTarget,
    PartTooLarge,
    StorageError,
    StoredPart,
    UploadNotFound,
    check_range,
    normalize_etag,
    validate_completion,
    validate_key,
    validate_part_number,
    validate_prefix,
)

MULTIPART_DIR = ".multipart"
_MULTIPART_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")
_PART_FILE = re.compile(r"([0-9]{1,5})\.part")
# Parts written in place (see "multipart" below): the shared data file, its fixed stride,
# and each in-place part's record.
_DATA_FILE = "data"
_STRIDE_FILE = "stride"
_IN_PLACE_RECORD = re.compile(r"([0-9]{1,5})\.at")

CONTENT_TYPES = {
    "m3u8": "application/vnd.apple.mpegurl",
    "m4s": "video/iso.segment",
    "mp4": "video/mp4",
    "m4a": "audio/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "ts": "video/mp2t",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "vtt": "text/vtt",
    "json": "application/json",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"

# Read once at import: os.umask can only be read by setting it, which races other threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def content_type_for(key: str) -> str:
    """Content type from the key's extension (local files carry no metadata)."""
    _, dot, ext = key.rpartition(".")
    return CONTENT_TYPES.get(ext.lower(), DEFAULT_CONTENT_TYPE) if dot else DEFAULT_CONTENT_TYPE


# --- signed media URLs -------------------------------------------------------------------


def media_signature(
    secret_key: str,
    key: str,
    exp: int,
    *,
    filename: str | None = None,
    content_type: str | None = None,
) -> str:
    """HMAC-SHA256 hex of f"{key}\\n{exp}"; response overrides, when present, are signed too
    so nobody can change the download name or type of a link."""
    message = f"{key}\n{exp}"
    if filename is not None or content_type is not None:
        message += "\n" + json.dumps([filename, content_type])
    return hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_media_url(
    base_url: str,
    secret_key: str,
    key: str,
    *,
    ttl_s: int,
    filename: str | None = None,
    content_type: str | None = None,
    now: float | None = None,
) -> str:
    """`{base_url}/v1/media/{key}?exp=<unix>&sig=<hex>` (+ `dl`, `ct` overrides)."""
    validate_key(key)
    exp = int(now if now is not None else time.time()) + ttl_s
    query: dict[str, str | int] = {"exp": exp}
    if filename is not None:
        query["dl"] = filename
    if content_type is not None:
        query["ct"] = content_type
    query["sig"] = media_signature(
        secret_key, key, exp, filename=filename, content_type=content_type
    )
    return f"{base_url.rstrip('/')}/v1/media/{quote(key)}?{urlencode(query)}"


# validate_key's rule as one pattern (segments of safe characters, none starting with a dot).
_SAFE_KEY = re.compile(r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*[A-Za-z0-9_-][A-Za-z0-9._-]*")


def scope_signature(secret_key: str, scope: str, exp: int) -> str:
    """HMAC-SHA256 hex over a key prefix and an expiry: one signature for every object under
    the prefix (a media playlist's segments), so serving a playlist costs one HMAC."""
    message = f"scope\n{scope}\n{exp}"
    return hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def valid_scope(scope: str) -> bool:
    """A scope is a key prefix that ends with "/" (whole folders only)."""
    return scope.endswith("/") and len(scope) <= 1024 and bool(_SAFE_KEY.fullmatch(scope[:-1]))


def verify_scope_signature(secret_key: str, key: str, scope: str, exp: int, sig: str) -> bool:
    """True when sig signs (scope, exp), key lies under scope, and exp has not passed."""
    if exp < time.time() or not valid_scope(scope) or not key.startswith(scope):
        return False
    expected = scope_signature(secret_key, scope, exp)
    return hmac.compare_digest(expected.encode(), sig.lower().encode())


class ScopedMediaSigner:
    """Signed `/v1/media/{key}?exp=&scope=&sig=` URLs for many keys under one prefix, with one
    HMAC for all of them (the media route checks that the key lies under the scope)."""

    def __init__(self, base_url: str, secret_key: str, scope: str, exp: int) -> None:
        if not valid_scope(scope):
            raise InvalidKey(f"invalid scope {scope!r}")
        self._prefix = f"{base_url.rstrip('/')}/v1/media/"
        self._scope = scope
        sig = scope_signature(secret_key, scope, exp)
        self._query = f"?exp={exp}&scope={quote(scope, safe='')}&sig={sig}"

    def url(self, key: str) -> str:
        # Safe characters only (validate_key's rule), so quote(key) would be the key itself.
        if not key.startswith(self._scope) or len(key) > 1024 or not _SAFE_KEY.fullmatch(key):
            raise InvalidKey(f"invalid key {key!r} for scope {self._scope!r}")
        return f"{self._prefix}{key}{self._query}"


def verify_media_signature(
    secret_key: str,
    key: str,
    exp: int,
    sig: str,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    now: float | None = None,
) -> bool:
    """True when sig signs these values and exp has not passed."""
    if exp < (now if now is not None else time.time()):
        return False
    expected = media_signature(secret_key, key, exp, filename=filename, content_type=content_type)
    # As bytes: compare_digest refuses non-ASCII str, and sig comes from the query string.
    return hmac.compare_digest(expected.encode(), sig.lower().encode())


# --- the adapter -------------------------------------------------------------------------


def _validate_multipart_id(multipart_id: str) -> str:
    if not isinstance(multipart_id, str) or not _MULTIPART_ID.fullmatch(multipart_id):
        raise InvalidKey("invalid multipart upload id")
    return multipart_id


def _md5_file(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK_SIZE):
            digest.update(block)
    return digest.hexdigest()


def _discard(f: IO[bytes], path: str) -> None:
    f.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _tiles(numbers: list[int], sizes: list[int], stride: int) -> bool:
    """Whether parts 1..k of these sizes fill the data file from its start: every part but
    the last exactly one stride, the last at most one."""
    return numbers == list(range(1, len(numbers) + 1)) and all(
        size == stride if n < len(numbers) else size <= stride
        for n, size in zip(numbers, sizes, strict=True)
    )


@dataclass(frozen=True, slots=True)
class _PartCopy:
    """The current copy of one part: a file of its own (`path`), or `size` bytes at `offset`
    of the upload's data file (path None)."""

    size: int
    etag: str
    path: str | None
    offset: int = 0


@dataclass(slots=True)
class _Slot:
    """A claim on one part's range of the data file: the part's lock (exclusive) and the
    data file (shared lock, so `complete` cannot take the file away mid-write)."""

    lock_fd: int
    data_fd: int
    offset: int

    def release(self) -> None:
        os.close(self.data_fd)  # closing drops the flock of each descriptor
        os.close(self.lock_fd)


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: str  # real path, inside the storage root
    stat: os.stat_result
    info: ObjectInfo


class LocalStorage:
    kind: Literal["local"] = "local"

    def __init__(
        self,
        root: Path,
        *,
        secret_key: str,
        public_base_url: str,
        min_part_size: int = MIN_PART_SIZE,
    ) -> None:
        if not secret_key:
            raise ValueError("the local storage needs a secret key to sign media URLs")
        root.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self._root = str(self.root)
        self._secret_key = secret_key
        self._public_base_url = public_base_url
        self.min_part_size = min_part_size

    # --- paths (call from worker threads: realpath touches the disk) ---

    def _inside(self, path: str) -> str:
        """The real path, refusing anything (a symlink, say) that leads outside the root."""
        real = os.path.realpath(path)
        if real != self._root and not real.startswith(self._root + os.sep):
            raise InvalidKey("the key leads outside the storage root")
        return real

    def _path(self, key: str) -> str:
        validate_key(key)
        return self._inside(os.path.join(self._root, *key.split("/")))

    def _upload_dir(self, multipart_id: str) -> str:
        _validate_multipart_id(multipart_id)
        return self._inside(os.path.join(self._root, MULTIPART_DIR, multipart_id))

    def _prune(self, directory: str) -> None:
        """Remove now-empty folders up to (not including) the root."""
        while directory != self._root and directory.startswith(self._root + os.sep):
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = os.path.dirname(directory)

    def _mkstemp(self, dest: str, *, make_dirs: bool = True) -> tuple[IO[bytes], str]:
        """A temp file beside dest (same filesystem, so the final rename is atomic). Dot
        names cannot collide with keys."""
        parent, name = os.path.split(dest)
        for _ in range(3):
            if make_dirs:
                os.makedirs(parent, exist_ok=True)
            try:
                fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{name}.", suffix=".tmp")
            except FileNotFoundError:  # a concurrent delete pruned the folder; retry
                if not make_dirs:
                    raise
                continue
            # mkstemp creates 0600; give the file the mode a plain open() would.
            os.fchmod(fd, 0o666 & ~_UMASK)
            return os.fdopen(fd, "wb"), tmp
        raise StorageError(f"cannot create a file in {parent}")

    @staticmethod
    def _commit(f: IO[bytes], tmp: str, dest: str) -> os.stat_result:
        f.flush()
        os.fsync(f.fileno())
        st = os.fstat(f.fileno())
        f.close()
        os.replace(tmp, dest)
        return st

    async def _write(
        self,
        dest: str,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int | None = None,
        md5: bool = False,
        make_dirs: bool = True,
    ) -> tuple[int, str, os.stat_result]:
        """Stream chunks to dest atomically in constant memory; (size, md5 hex, stat)."""
        f, tmp = await anyio.to_thread.run_sync(
            functools.partial(self._mkstemp, dest, make_dirs=make_dirs)
        )
        digest = hashlib.md5(usedforsecurity=False) if md5 else None
        total = 0
        done = False

        def write(data: bytes | bytearray) -> None:
            f.write(data)
            if digest is not None:
                digest.update(data)

        try:
            buffer = bytearray()
            async for chunk in chunks:
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise PartTooLarge(max_bytes)
                buffer += chunk
                # Batch small network chunks into ~1 MiB writes: fewer thread hops.
                if len(buffer) >= CHUNK_SIZE:
                    data, buffer = buffer, bytearray()
                    await anyio.to_thread.run_sync(write, data)
            if buffer:
                await anyio.to_thread.run_sync(write, buffer)
            st = await anyio.to_thread.run_sync(self._commit, f, tmp, dest)
            done = True
        finally:
            if not done:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(_discard, f, tmp)
        return total, digest.hexdigest() if digest is not None else "", st

    # --- objects ---

    async def check(self) -> None:
        def run() -> None:
            if not os.path.isdir(self._root) or not os.access(self._root, os.W_OK | os.X_OK):
                raise StorageError(f"the media folder {self._root} is missing or not writable")

        await anyio.to_thread.run_sync(run)

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str | None = None
    ) -> int:
        # content_type is not stored: local files get theirs from the extension.
        dest = await anyio.to_thread.run_sync(self._path, key)
        try:
            size, _, _ = await self._write(dest, chunks)
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise StorageError(f"cannot store {key!r}: {exc}") from exc
        return size

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        def run() -> None:
            dest = self._path(key)
            with open(path, "rb") as src:
                f, tmp = self._mkstemp(dest)
                try:
                    shutil.copyfileobj(src, f, CHUNK_SIZE)
                    self._commit(f, tmp, dest)
                except BaseException:
                    _discard(f, tmp)
                    raise

        await anyio.to_thread.run_sync(run)

    async def download_to(self, key: str, path: Path) -> None:
        def run() -> None:
            try:
                src = open(self._path(key), "rb")  # noqa: SIM115 - closed by the with below
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise ObjectNotFound(key) from exc
            with src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_SIZE)

        await anyio.to_thread.run_sync(run)

    def _locate(self, key: str) -> LocalFile | None:
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        info = ObjectInfo(
            size=st.st_size,
            # Changes whenever the file is replaced (atomic rename gives a new mtime).
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
            content_type=content_type_for(key),
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )
        return LocalFile(path=path, stat=st, info=info)

    async def locate(self, key: str) -> LocalFile | None:
        """The file behind key, for serving it directly (the media route); None when it
        does not exist. Raises InvalidKey."""
        return await anyio.to_thread.run_sync(self._locate, key)

    async def stat(self, key: str) -> ObjectInfo | None:
        found = await self.locate(key)
        return None if found is None else found.info

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        def run() -> ChunkStream:
            try:
                f = open(self._path(key), "rb")  # noqa: SIM115 - ChunkStream closes it
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise ObjectNotFound(key) from exc
            try:
                size = os.fstat(f.fileno()).st_size
                span = check_range(size, start, end)
                if span is None:
                    return ChunkStream(f.read, f.close, length=size)
                f.seek(span[0])
                return ChunkStream(f.read, f.close, length=span[1] - span[0] + 1)
            except BaseException:
                f.close()
                raise

        return await anyio.to_thread.run_sync(run)

    async def delete(self, key: str) -> None:
        def run() -> None:
            path = self._path(key)
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return
            self._prune(os.path.dirname(path))

        await anyio.to_thread.run_sync(run)

    async def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix)

        def run() -> int:
            # Walk the deepest folder the prefix names, then match keys as strings, as S3 does
            # ("a/b" matches "a/b/c" and "a/bc").
            folder = prefix.rpartition("/")[0]
            base = self._root
            if folder:
                base = self._inside(os.path.join(self._root, *folder.split("/")))
            count = 0
            emptied: list[str] = []
            for dirpath, dirnames, filenames in os.walk(base):
                # .multipart and temp names are not objects.
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel_dir = os.path.relpath(dirpath, self._root).replace(os.sep, "/")
                rel_dir = "" if rel_dir == "." else rel_dir + "/"
                for name in filenames:
                    if name.startswith(".") or not (rel_dir + name).startswith(prefix):
                        continue
                    try:
                        os.unlink(os.path.join(dirpath, name))
                        count += 1
                    except FileNotFoundError:
                        pass
                if rel_dir.startswith(prefix):
                    emptied.append(dirpath)
            for dirpath in reversed(emptied):  # deepest first
                # OSError: it still holds a concurrent write's temp file.
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
            self._prune(base)
            return count

        return await anyio.to_thread.run_sync(run)

    async def presign_get(
        self,
        key: str,
        *,
        ttl_s: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        return sign_media_url(
            self._public_base_url,
            self._secret_key,
            key,
            ttl_s=ttl_s,
            filename=filename,
            content_type=content_type,
        )

    async def sha256(self, key: str) -> str:
        def run() -> str:
            digest = hashlib.sha256()
            try:
                f = open(self._path(key), "rb")  # noqa: SIM115 - closed by the with below
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise ObjectNotFound(key) from exc
            with f:
                while block := f.read(CHUNK_SIZE):
                    digest.update(block)
            return digest.hexdigest()

        return await anyio.to_thread.run_sync(run)

    # --- multipart: <root>/.multipart/<id>/ ---
    #
    # meta.json              the key, the content type, whether parts may go in place
    # data                   one file the size of the object: a part received for the first
    #                        time is written straight into it at (n - 1) * stride, so
    #                        `complete` renames it into place instead of copying every byte
    # stride                 the part size, fixed by the first in-place write (the API always
    #                        sends parts of its upload's part_size)
    # <n>.at                 an in-place part's record: offset, size, md5; written after its
    #                        bytes are synced, so a part without one is not stored
    # <n>.lock               flock'ed while part n is written in place
    # <n>.part, <n>.etag     a part in a file of its own: a re-send of a stored part (it must
    #                        not overwrite the stored copy until it is whole), a part sent
    #                        while the same part is being written, a part of another size,
    #                        a reopened object's parts, uploads created before `data` existed
    #
    # A part's current copy is its own file when there is one, else its in-place record.

    @staticmethod
    def _read_meta(directory: str, key: str) -> dict[str, Any] | None:
        """The upload's meta.json when the upload exists and belongs to key."""
        try:
            with open(os.path.join(directory, "meta.json"), encoding="utf-8") as f:
                meta: dict[str, Any] = json.load(f)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        return meta if meta.get("key") == key else None

    def _open_upload(self, key: str, multipart_id: str) -> tuple[str, bool]:
        """The upload's folder after checking it exists and belongs to key, and whether its
        parts may be written in place."""
        validate_key(key)
        directory = self._upload_dir(multipart_id)
        meta = self._read_meta(directory, key)
        if meta is None:
            raise UploadNotFound(multipart_id)
        in_place = bool(meta.get("in_place"))
        # No data file: a completion renamed it into place and was cut short before it
        # removed the folder. The upload is over.
        if in_place and not os.path.exists(os.path.join(directory, _DATA_FILE)):
            raise UploadNotFound(multipart_id)
        return directory, in_place

    @staticmethod
    def _part_etag(part_path: str, st: os.stat_result) -> str:
        """The part's md5 from its sidecar when the sidecar describes this very file (same
        inode, size and mtime); otherwise computed, so a crash between the two renames or a
        concurrent re-send never yields a wrong ETag."""
        sidecar = part_path[: -len(".part")] + ".etag"
        try:
            with open(sidecar, encoding="utf-8") as f:
                meta = json.load(f)
            if (meta["ino"], meta["size"], meta["mtime_ns"]) == (
                st.st_ino,
                st.st_size,
                st.st_mtime_ns,
            ):
                return str(meta["etag"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return _md5_file(part_path)

    @staticmethod
    def _write_sidecar(part_path: str, etag: str, st: os.stat_result) -> None:
        sidecar = part_path[: -len(".part")] + ".etag"
        tmp = f"{sidecar}.{secrets.token_hex(4)}.tmp"
        meta = {"etag": etag, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f)
        os.replace(tmp, sidecar)

    async def create_multipart(self, key: str, *, content_type: str | None) -> str:
        return await self._create_upload(key, content_type=content_type, in_place=True)

    async def _create_upload(self, key: str, *, content_type: str | None, in_place: bool) -> str:
        multipart_id = secrets.token_urlsafe(24)

        def run() -> None:
            self._path(key)
            directory = self._upload_dir(multipart_id)
            os.makedirs(directory)
            if in_place:  # sparse: it grows as parts land at their offsets
                with open(os.path.join(directory, _DATA_FILE), "xb"):
                    pass
            meta = {
                "key": key,
                "content_type": content_type,
                "created_at": time.time(),
                "in_place": in_place,
            }
            with open(os.path.join(directory, "meta.json"), "w", encoding="utf-8") as f:
                json.dump(meta, f)

        await anyio.to_thread.run_sync(run)
        return multipart_id

    async def presign_part(
        self, key: str, multipart_id: str, part_number: int, *, ttl_s: int
    ) -> PartTarget | None:
        # The API receives local parts itself (write_part) and signs its own part URLs.
        return None

    @staticmethod
    def _stride(directory: str, part_size: int) -> int:
        """The upload's stride: fixed by the first in-place write (linked into place whole,
        so a concurrent first write reads the winner's)."""
        path = os.path.join(directory, _STRIDE_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                return int(f.read())
        except FileNotFoundError:
            pass
        tmp = f"{path}.{secrets.token_hex(4)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(str(part_size))
        try:
            os.link(tmp, path)
        except FileExistsError:
            with open(path, encoding="utf-8") as f:
                return int(f.read())
        finally:
            os.unlink(tmp)
        return part_size

    def _claim_slot(self, directory: str, part_number: int, max_bytes: int) -> _Slot | None:
        """Part n's range of the data file when nobody else is writing part n and no copy of
        it is stored yet; None: write the part to a file of its own."""
        if self._stride(directory, max_bytes) != max_bytes:
            return None
        lock_fd = os.open(os.path.join(directory, f"{part_number}.lock"), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            return None
        # Checked under the lock: only a holder of the lock writes the record.
        if os.path.exists(os.path.join(directory, f"{part_number}.at")):
            os.close(lock_fd)
            return None
        try:
            data_fd = os.open(os.path.join(directory, _DATA_FILE), os.O_WRONLY)
        except BaseException:
            os.close(lock_fd)
            raise
        try:
            fcntl.flock(data_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # being completed: the part goes nowhere useful
            os.close(data_fd)
            os.close(lock_fd)
            return None
        return _Slot(lock_fd, data_fd, (part_number - 1) * max_bytes)

    async def _write_in_place(
        self,
        directory: str,
        part_number: int,
        slot: _Slot,
        chunks: AsyncIterator[bytes],
        max_bytes: int,
    ) -> StoredPart:
        """Stream the part into its range of the data file, sync it, then record it. A failed
        write leaves no record: the range is free for the next attempt."""
        digest = hashlib.md5(usedforsecurity=False)
        total = 0

        def write(data: bytearray, at: int) -> None:
            view = memoryview(data)
            while view:
                written = os.pwrite(slot.data_fd, view, at)
                view, at = view[written:], at + written
            digest.update(data)

        def finish() -> None:
            os.fdatasync(slot.data_fd)
            record = os.path.join(directory, f"{part_number}.at")
            tmp = f"{record}.{secrets.token_hex(4)}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"offset": slot.offset, "size": total, "etag": digest.hexdigest()}, f)
            os.replace(tmp, record)

        try:
            buffer = bytearray()
            async for chunk in chunks:
                if total + len(buffer) + len(chunk) > max_bytes:
                    raise PartTooLarge(max_bytes)
                buffer += chunk
                if len(buffer) >= CHUNK_SIZE:  # ~1 MiB writes: fewer thread hops
                    data, buffer = buffer, bytearray()
                    await anyio.to_thread.run_sync(write, data, slot.offset + total)
                    total += len(data)
            if buffer:
                await anyio.to_thread.run_sync(write, buffer, slot.offset + total)
                total += len(buffer)
            await anyio.to_thread.run_sync(finish)
        finally:
            slot.release()
        return StoredPart(number=part_number, size=total, etag=digest.hexdigest())

    async def write_part(
        self,
        key: str,
        multipart_id: str,
        part_number: int,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
    ) -> StoredPart:
        validate_part_number(part_number)
        directory, in_place = await anyio.to_thread.run_sync(self._open_upload, key, multipart_id)
        try:
            slot = None
            if in_place:
                slot = await anyio.to_thread.run_sync(
                    self._claim_slot, directory, part_number, max_bytes
                )
            if slot is not None:
                return await self._write_in_place(directory, part_number, slot, chunks, max_bytes)
            dest = os.path.join(directory, f"{part_number}.part")
            # make_dirs=False: a concurrent abort must not be undone by recreating the folder.
            size, etag, st = await self._write(
                dest, chunks, max_bytes=max_bytes, md5=True, make_dirs=False
            )
            await anyio.to_thread.run_sync(self._write_sidecar, dest, etag, st)
        except FileNotFoundError as exc:  # aborted or completed meanwhile
            raise UploadNotFound(multipart_id) from exc
        return StoredPart(number=part_number, size=size, etag=etag)

    def _list_parts(self, directory: str) -> dict[int, tuple[str, os.stat_result]]:
        """Parts in files of their own."""
        parts: dict[int, tuple[str, os.stat_result]] = {}
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return parts
        for name in names:
            match = _PART_FILE.fullmatch(name)
            if match:
                path = os.path.join(directory, name)
                try:
                    parts[int(match.group(1))] = (path, os.stat(path))
                except FileNotFoundError:
                    continue
        return parts

    def _current_parts(self, directory: str) -> dict[int, _PartCopy]:
        """Each stored part's current copy: its own file if any, else its in-place record."""
        parts = {
            n: _PartCopy(st.st_size, self._part_etag(path, st), path)
            for n, (path, st) in self._list_parts(directory).items()
        }
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return parts
        for name in names:
            match = _IN_PLACE_RECORD.fullmatch(name)
            if match is None or int(match.group(1)) in parts:
                continue
            try:
                with open(os.path.join(directory, name), encoding="utf-8") as f:
                    record = json.load(f)
            except FileNotFoundError:
                continue
            parts[int(match.group(1))] = _PartCopy(
                int(record["size"]), str(record["etag"]), None, int(record["offset"])
            )
        return parts

    async def list_parts(self, key: str, multipart_id: str) -> list[StoredPart]:
        def run() -> list[StoredPart]:
            directory, _ = self._open_upload(key, multipart_id)
            return [
                StoredPart(number=n, size=copy.size, etag=copy.etag)
                for n, copy in sorted(self._current_parts(directory).items())
            ]

        return await anyio.to_thread.run_sync(run)

    @staticmethod
    def _read_stride(directory: str) -> int | None:
        try:
            with open(os.path.join(directory, _STRIDE_FILE), encoding="utf-8") as f:
                return int(f.read())
        except FileNotFoundError:
            return None

    def _complete_in_place(
        self, directory: str, chosen: list[_PartCopy], stride: int, dest: str
    ) -> None:
        """Parts 1..k that tile the data file: copy in the few held in files of their own,
        cut the file to size, sync it and rename it to the key (atomic: the object is whole
        or absent)."""
        data = os.path.join(directory, _DATA_FILE)
        fd = os.open(data, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise InvalidPart("a part is still being written; complete again") from exc
            for index, copy in enumerate(chosen):
                if copy.path is not None:
                    with open(copy.path, "rb") as src:
                        at = index * stride
                        while block := src.read(CHUNK_SIZE):
                            os.pwrite(fd, block, at)
                            at += len(block)
            os.ftruncate(fd, sum(copy.size for copy in chosen))
            os.fsync(fd)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.replace(data, dest)
        finally:
            os.close(fd)

    def _complete_by_copy(self, directory: str, chosen: list[_PartCopy], dest: str) -> None:
        """Any other set of parts: join their bytes into a new file beside the key."""
        f, tmp = self._mkstemp(dest)
        try:
            with contextlib.ExitStack() as stack:
                data: IO[bytes] | None = None
                for copy in chosen:
                    if copy.path is not None:
                        with open(copy.path, "rb") as src:
                            shutil.copyfileobj(src, f, CHUNK_SIZE)
                        continue
                    if data is None:
                        data = stack.enter_context(open(os.path.join(directory, _DATA_FILE), "rb"))
                    data.seek(copy.offset)
                    remaining = copy.size
                    while remaining and (block := data.read(min(CHUNK_SIZE, remaining))):
                        f.write(block)
                        remaining -= len(block)
            self._commit(f, tmp, dest)
        except BaseException:
            _discard(f, tmp)
            raise

    async def complete_multipart(
        self, key: str, multipart_id: str, parts: list[tuple[int, str]]
    ) -> None:
        validate_completion(parts)

        def run() -> None:
            directory, in_place = self._open_upload(key, multipart_id)
            dest = self._path(key)
            stored = self._current_parts(directory)
            chosen: list[_PartCopy] = []
            for index, (number, etag) in enumerate(parts):
                if number not in stored:
                    raise InvalidPart(f"part {number} was not uploaded")
                copy = stored[number]
                if normalize_etag(etag) != copy.etag:
                    raise InvalidPart(f"part {number} does not match its ETag")
                if index < len(parts) - 1 and copy.size < self.min_part_size:
                    raise InvalidPart(f"part {number} is smaller than {self.min_part_size} bytes")
                chosen.append(copy)
            stride = self._read_stride(directory) if in_place else None
            numbers = [number for number, _ in parts]
            if stride is not None and _tiles(numbers, [c.size for c in chosen], stride):
                self._complete_in_place(directory, chosen, stride, dest)
            else:
                self._complete_by_copy(directory, chosen, dest)
            shutil.rmtree(directory, ignore_errors=True)

        try:
            await anyio.to_thread.run_sync(run)
        except FileNotFoundError as exc:  # a part vanished: aborted or completed meanwhile
            raise UploadNotFound(multipart_id) from exc

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        def run() -> None:
            validate_key(key)
            directory = self._upload_dir(multipart_id)
            # Not _open_upload: also remove what a completion cut short left behind.
            if self._read_meta(directory, key) is not None:
                shutil.rmtree(directory, ignore_errors=True)

        await anyio.to_thread.run_sync(run)

    async def reopen_multipart(self, key: str, *, part_size: int, content_type: str | None) -> str:
        if part_size < 1:
            raise ValueError("part_size must be positive")
        # Parts in files of their own: a re-sent part must win over the one split off here
        # (in place, it would lose to it; see "multipart" above). A rare path: a checksum
        # mismatch.
        multipart_id = await self._create_upload(key, content_type=content_type, in_place=False)

        def run() -> None:
            directory = self._upload_dir(multipart_id)
            try:
                src = open(self._path(key), "rb")  # noqa: SIM115 - closed by the with below
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise ObjectNotFound(key) from exc
            with src:
                size = os.fstat(src.fileno()).st_size
                count = max(1, -(-size // part_size))
                validate_part_number(count)
                for number in range(1, count + 1):
                    dest = os.path.join(directory, f"{number}.part")
                    f, tmp = self._mkstemp(dest, make_dirs=False)
                    digest = hashlib.md5(usedforsecurity=False)
                    try:
                        remaining = part_size
                        while remaining and (block := src.read(min(CHUNK_SIZE, remaining))):
                            f.write(block)
                            digest.update(block)
                            remaining -= len(block)
                        st = self._commit(f, tmp, dest)
                    except BaseException:
                        _discard(f, tmp)
                        raise
                    self._write_sidecar(dest, digest.hexdigest(), st)

        try:
            await anyio.to_thread.run_sync(run)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.abort_multipart(key, multipart_id)
            raise
        return multipart_id
