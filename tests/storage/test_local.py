"""What only the local adapter does: path safety, API-received parts, signed URLs."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from app.config import Settings
from app.storage import (
    InvalidKey,
    InvalidPart,
    LocalStorage,
    PartTooLarge,
    S3Storage,
    StorageError,
    UploadNotFound,
    build_storage,
)
from app.storage.local import media_signature, sign_media_url, verify_media_signature
from tests.storage.conftest import SECRET
from tests.storage.helpers import chunked, md5, read_all


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


async def test_root_is_created(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "media"
    storage = LocalStorage(root, secret_key=SECRET, public_base_url="http://x")
    assert root.is_dir()
    await storage.check()
    root.rmdir()
    with pytest.raises(StorageError):
        await storage.check()


async def test_layout_is_the_key(local_storage: LocalStorage) -> None:
    await local_storage.put_stream("v/1/hls/seg_001.m4s", chunked(b"abc"))
    assert (local_storage.root / "v" / "1" / "hls" / "seg_001.m4s").read_bytes() == b"abc"
    assert files_under(local_storage.root) == ["v/1/hls/seg_001.m4s"]  # no temp files left
    await local_storage.delete("v/1/hls/seg_001.m4s")
    assert list(local_storage.root.iterdir()) == []  # emptied folders are pruned


async def test_symlink_out_of_root_is_refused(local_storage: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (local_storage.root / "escape").symlink_to(outside, target_is_directory=True)
    (local_storage.root / "passwd").symlink_to("/etc/passwd")

    with pytest.raises(InvalidKey):
        await local_storage.stat("escape/secret.txt")
    with pytest.raises(InvalidKey):
        await local_storage.open_range("escape/secret.txt")
    with pytest.raises(InvalidKey):
        await local_storage.put_stream("escape/new.txt", chunked(b"x"))
    with pytest.raises(InvalidKey):
        await local_storage.stat("passwd")
    with pytest.raises(InvalidKey):
        await local_storage.delete_prefix("escape/")
    assert not (outside / "new.txt").exists()
    assert (outside / "secret.txt").exists()


async def test_symlink_inside_root_is_allowed(local_storage: LocalStorage) -> None:
    await local_storage.put_stream("real/a.txt", chunked(b"a"))
    (local_storage.root / "alias").symlink_to(local_storage.root / "real")
    assert await read_all(await local_storage.open_range("alias/a.txt")) == b"a"


@pytest.mark.parametrize("key", [".multipart/x", "a/.hidden", "..", "."])
async def test_dot_segments_are_reserved(local_storage: LocalStorage, key: str) -> None:
    with pytest.raises(InvalidKey):
        await local_storage.put_stream(key, chunked(b"x"))


async def test_delete_prefix_spares_uploads_in_progress(local_storage: LocalStorage) -> None:
    mid = await local_storage.create_multipart("a/upload.bin", content_type=None)
    await local_storage.write_part("a/upload.bin", mid, 1, chunked(b"part"), max_bytes=10)
    await local_storage.put_stream("a/x", chunked(b"x"))
    assert await local_storage.delete_prefix("a") == 1
    assert [p.number for p in await local_storage.list_parts("a/upload.bin", mid)] == [1]
    with pytest.raises(InvalidKey):
        await local_storage.delete_prefix("")


def upload_files(part_dir: Path) -> list[str]:
    """The upload's stored state, without the lock files (empty, only ever flock'ed)."""
    return [name for name in files_under(part_dir) if not name.endswith(".lock")]


async def test_write_part_too_large_leaves_no_part(local_storage: LocalStorage) -> None:
    key = "uploads/u/source.mp4"
    mid = await local_storage.create_multipart(key, content_type="video/mp4")
    part_dir = local_storage.root / ".multipart" / mid

    with pytest.raises(PartTooLarge):
        await local_storage.write_part(key, mid, 1, chunked(b"x" * 100, 10), max_bytes=99)
    assert upload_files(part_dir) == ["data", "meta.json", "stride"]  # no record: not stored
    assert await local_storage.list_parts(key, mid) == []

    # A rejected re-send keeps the previous copy of the part: re-sends go to a file of their
    # own, never over the stored bytes.
    await local_storage.write_part(key, mid, 1, chunked(b"good"), max_bytes=99)
    with pytest.raises(PartTooLarge):
        await local_storage.write_part(key, mid, 1, chunked(b"y" * 100, 10), max_bytes=99)
    assert upload_files(part_dir) == ["1.at", "data", "meta.json", "stride"]
    [part] = await local_storage.list_parts(key, mid)
    assert (part.size, part.etag) == (4, md5(b"good"))


async def test_write_part_stops_reading_at_the_limit(local_storage: LocalStorage) -> None:
    mid = await local_storage.create_multipart("k.bin", content_type=None)
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 1024
            yield b"z" * 1024

    with pytest.raises(PartTooLarge):
        await local_storage.write_part("k.bin", mid, 1, endless(), max_bytes=10 * 1024)
    assert sent == 11 * 1024


async def test_multipart_ids_are_validated(local_storage: LocalStorage) -> None:
    for bad in ["../../etc", "short", "a/b" * 10, ""]:
        with pytest.raises(InvalidKey):
            await local_storage.list_parts("k.bin", bad)
    with pytest.raises(UploadNotFound):
        await local_storage.list_parts("k.bin", "A" * 32)
    with pytest.raises(UploadNotFound):
        await local_storage.write_part("k.bin", "A" * 32, 1, chunked(b"x"), max_bytes=10)
    assert not (local_storage.root / ".multipart" / ("A" * 32)).exists()

    # An id only works with the key it was created for.
    mid = await local_storage.create_multipart("k.bin", content_type=None)
    with pytest.raises(UploadNotFound):
        await local_storage.list_parts("other.bin", mid)


async def test_part_etag_survives_a_stale_sidecar(local_storage: LocalStorage) -> None:
    mid = await local_storage.create_multipart("k.bin", content_type=None)
    await local_storage.write_part("k.bin", mid, 1, chunked(b"old"), max_bytes=10)
    # The re-send is a file of its own, with an ETag sidecar.
    await local_storage.write_part("k.bin", mid, 1, chunked(b"one"), max_bytes=10)
    part_dir = local_storage.root / ".multipart" / mid
    assert (part_dir / "1.part").read_bytes() == b"one"
    # As after a crash between the part's and the sidecar's rename.
    (part_dir / "1.etag").write_text(json.dumps({"etag": md5(b"old"), "ino": 1, "size": 3}))
    [part] = await local_storage.list_parts("k.bin", mid)
    assert part.etag == md5(b"one")
    (part_dir / "1.etag").unlink()
    [part] = await local_storage.list_parts("k.bin", mid)
    assert part.etag == md5(b"one")


async def test_complete_removes_parts(local_storage: LocalStorage) -> None:
    mid = await local_storage.create_multipart("done.bin", content_type=None)
    stored = await local_storage.write_part("done.bin", mid, 1, chunked(b"whole"), max_bytes=10)
    await local_storage.complete_multipart("done.bin", mid, [(1, stored.etag)])
    assert not (local_storage.root / ".multipart" / mid).exists()
    assert files_under(local_storage.root) == ["done.bin"]
    with pytest.raises(UploadNotFound):
        await local_storage.complete_multipart("done.bin", mid, [(1, stored.etag)])


# --- parts written in place: `complete` renames the data file instead of copying ---

STRIDE = 64 * 1024


async def _in_place_upload(
    storage: LocalStorage, key: str, blobs: list[bytes]
) -> tuple[str, list[tuple[int, str]]]:
    mid = await storage.create_multipart(key, content_type=None)
    etags = []
    # Out of order, as parallel clients send them.
    for n in reversed(range(1, len(blobs) + 1)):
        stored = await storage.write_part(
            key, mid, n, chunked(blobs[n - 1], 10_000), max_bytes=STRIDE
        )
        etags.append((n, stored.etag))
    return mid, sorted(etags)


async def test_complete_renames_the_data_file(tmp_path: Path) -> None:
    storage = LocalStorage(
        tmp_path / "m", secret_key=SECRET, public_base_url="http://x", min_part_size=STRIDE
    )
    blobs = [os.urandom(STRIDE), os.urandom(STRIDE), os.urandom(1000)]
    mid, etags = await _in_place_upload(storage, "a/done.bin", blobs)
    part_dir = storage.root / ".multipart" / mid
    assert upload_files(part_dir) == ["1.at", "2.at", "3.at", "data", "meta.json", "stride"]
    data_inode = (part_dir / "data").stat().st_ino

    await storage.complete_multipart("a/done.bin", mid, etags)
    final = storage.root / "a" / "done.bin"
    assert final.read_bytes() == b"".join(blobs)
    assert final.stat().st_ino == data_inode  # renamed, not copied
    assert not part_dir.exists()


async def test_in_place_resend_and_complete(tmp_path: Path) -> None:
    """A re-sent part (held apart until complete) is copied into its range; the rest stays."""
    storage = LocalStorage(
        tmp_path / "m", secret_key=SECRET, public_base_url="http://x", min_part_size=STRIDE
    )
    blobs = [os.urandom(STRIDE), os.urandom(STRIDE), os.urandom(10)]
    mid, etags = await _in_place_upload(storage, "k.bin", blobs)
    fixed = os.urandom(STRIDE)
    stored = await storage.write_part("k.bin", mid, 2, chunked(fixed), max_bytes=STRIDE)
    listed = await storage.list_parts("k.bin", mid)
    assert [(p.number, p.etag) for p in listed] == [
        (1, md5(blobs[0])),
        (2, md5(fixed)),
        (3, md5(blobs[2])),
    ]
    with pytest.raises(InvalidPart):  # the superseded copy's ETag
        await storage.complete_multipart("k.bin", mid, etags)
    await storage.complete_multipart("k.bin", mid, [etags[0], (2, stored.etag), etags[2]])
    assert (storage.root / "k.bin").read_bytes() == blobs[0] + fixed + blobs[2]


async def test_parts_that_do_not_tile_are_joined_by_copy(tmp_path: Path) -> None:
    storage = LocalStorage(
        tmp_path / "m", secret_key=SECRET, public_base_url="http://x", min_part_size=1
    )
    mid = await storage.create_multipart("k.bin", content_type=None)
    # Part 1 fixes the stride at 100; part 2 (another limit) is a file of its own, part 4
    # is in place at offset 300: parts 1, 2, 4 do not tile, so they are copied.
    one = await storage.write_part("k.bin", mid, 1, chunked(b"a" * 7), max_bytes=100)
    two = await storage.write_part("k.bin", mid, 2, chunked(b"b" * 5), max_bytes=50)
    four = await storage.write_part("k.bin", mid, 4, chunked(b"d" * 3), max_bytes=100)
    part_dir = storage.root / ".multipart" / mid
    assert upload_files(part_dir) == [
        "1.at", "2.etag", "2.part", "4.at", "data", "meta.json", "stride",
    ]  # fmt: skip
    await storage.complete_multipart("k.bin", mid, [(1, one.etag), (2, two.etag), (4, four.etag)])
    assert (storage.root / "k.bin").read_bytes() == b"a" * 7 + b"b" * 5 + b"d" * 3
    assert not part_dir.exists()


async def test_a_part_being_written_goes_apart(local_storage: LocalStorage) -> None:
    """Two writers of one part never share its range; `complete` waits for none of them."""
    mid = await local_storage.create_multipart("k.bin", content_type=None)
    release = anyio.Event()
    started = anyio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"slow-"
        started.set()
        await release.wait()
        yield b"writer"

    results: dict[str, str] = {}

    async def first() -> None:
        stored = await local_storage.write_part("k.bin", mid, 1, slow(), max_bytes=100)
        results["slow"] = stored.etag

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await started.wait()
        fast = await local_storage.write_part("k.bin", mid, 1, chunked(b"fast"), max_bytes=100)
        part_dir = local_storage.root / ".multipart" / mid
        assert (part_dir / "1.part").read_bytes() == b"fast"  # apart from the range in use
        with pytest.raises(InvalidPart):  # the data file is in use
            await local_storage.complete_multipart("k.bin", mid, [(1, fast.etag)])
        release.set()
    assert results["slow"] == md5(b"slow-writer")
    # The part's own file is its current copy.
    [part] = await local_storage.list_parts("k.bin", mid)
    assert part.etag == fast.etag
    await local_storage.complete_multipart("k.bin", mid, [(1, fast.etag)])
    assert (local_storage.root / "k.bin").read_bytes() == b"fast"


async def test_completion_cut_short_after_the_rename(local_storage: LocalStorage) -> None:
    """The object is in place but the upload folder was left: the upload is over, and
    aborting it (as the expiry sweep would) removes the leftovers."""
    mid, etags = await _in_place_upload(local_storage, "k.bin", [b"whole"])
    part_dir = local_storage.root / ".multipart" / mid
    (part_dir / "data").rename(local_storage.root / "k.bin")
    with pytest.raises(UploadNotFound):
        await local_storage.list_parts("k.bin", mid)
    with pytest.raises(UploadNotFound):
        await local_storage.write_part("k.bin", mid, 1, chunked(b"x"), max_bytes=STRIDE)
    with pytest.raises(UploadNotFound):
        await local_storage.complete_multipart("k.bin", mid, etags)
    await local_storage.abort_multipart("k.bin", mid)
    assert not part_dir.exists()
    assert (local_storage.root / "k.bin").read_bytes() == b"whole"


async def test_uploads_without_a_data_file_still_complete(local_storage: LocalStorage) -> None:
    """An upload folder from before parts were written in place: parts in files of their own."""
    mid = await local_storage.create_multipart("k.bin", content_type=None)
    part_dir = local_storage.root / ".multipart" / mid
    (part_dir / "data").unlink()
    meta = json.loads((part_dir / "meta.json").read_text())
    del meta["in_place"]
    (part_dir / "meta.json").write_text(json.dumps(meta))
    stored = await local_storage.write_part("k.bin", mid, 1, chunked(b"legacy"), max_bytes=10)
    assert upload_files(part_dir) == ["1.etag", "1.part", "meta.json"]
    await local_storage.complete_multipart("k.bin", mid, [(1, stored.etag)])
    assert (local_storage.root / "k.bin").read_bytes() == b"legacy"


async def test_presign_part_is_none(local_storage: LocalStorage) -> None:
    mid = await local_storage.create_multipart("k.bin", content_type=None)
    assert await local_storage.presign_part("k.bin", mid, 1, ttl_s=60) is None


def test_signature_helpers() -> None:
    url = sign_media_url("http://api.test/", SECRET, "v/1/a.mp4", ttl_s=60, now=1_000)
    assert url == (
        "http://api.test/v1/media/v/1/a.mp4?exp=1060&sig="
        + media_signature(SECRET, "v/1/a.mp4", 1060)
    )
    sig = media_signature(SECRET, "v/1/a.mp4", 1060)
    assert verify_media_signature(SECRET, "v/1/a.mp4", 1060, sig, now=1_000)
    assert verify_media_signature(SECRET, "v/1/a.mp4", 1060, sig.upper(), now=1_000)
    assert not verify_media_signature(SECRET, "v/1/a.mp4", 1060, sig, now=1_061)  # expired
    assert not verify_media_signature(SECRET, "v/1/b.mp4", 1060, sig, now=1_000)
    assert not verify_media_signature(SECRET, "v/1/a.mp4", 1061, sig, now=1_000)
    assert not verify_media_signature("other", "v/1/a.mp4", 1060, sig, now=1_000)
    assert not verify_media_signature(SECRET, "v/1/a.mp4", 1060, "zz", now=1_000)
    with pytest.raises(InvalidKey):
        sign_media_url("http://api.test", SECRET, "../x", ttl_s=60)


def test_build_storage(tmp_path: Path, s3_endpoint: str) -> None:
    local = build_storage(
        Settings(storage="local", media_dir=tmp_path / "m", secret_key=SECRET),
        base_url="http://api.test",
    )
    assert isinstance(local, LocalStorage) and local.kind == "local"
    assert (tmp_path / "m").is_dir()
    assert local.min_part_size == 5 * 1024 * 1024
    tiny_parts = Settings(media_dir=tmp_path / "m", secret_key=SECRET, upload_part_size=65536)
    local = build_storage(tiny_parts, base_url="http://api.test")
    assert isinstance(local, LocalStorage) and local.min_part_size == 65536
    s3 = build_storage(
        Settings(storage="s3", s3_bucket="b", s3_endpoint_url=s3_endpoint, secret_key=SECRET),
        base_url="http://api.test",
    )
    assert isinstance(s3, S3Storage) and s3.kind == "s3" and s3.bucket == "b"


async def test_files_get_the_umask_mode(local_storage: LocalStorage) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    await local_storage.put_stream("p.txt", chunked(b"x"))
    assert os.stat(local_storage.root / "p.txt").st_mode & 0o777 == 0o666 & ~umask
