"""Folder-scoped signed media URLs (one HMAC per served playlist)."""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx
import pytest

from app.storage.base import InvalidKey
from app.storage.local import ScopedMediaSigner, scope_signature
from tests.storage.conftest import SECRET
from tests.storage.helpers import DATA, path_of

SCOPE = "v/1/"


def scoped(key: str, scope: str = SCOPE, ttl_s: int = 60) -> str:
    return path_of(ScopedMediaSigner("http://t", SECRET, scope, int(time.time()) + ttl_s).url(key))


async def test_scoped_url_reads_objects_under_its_folder(client: httpx.AsyncClient) -> None:
    r = await client.get(scoped("v/1/clip.mp4"))
    assert r.status_code == 200 and r.content == DATA
    r = await client.get(scoped("v/1/clip.mp4"), headers={"Range": "bytes=-500"})
    assert r.status_code == 206 and r.content == DATA[-500:]


async def test_scoped_signature_covers_only_its_folder(client: httpx.AsyncClient) -> None:
    exp = int(time.time()) + 60
    sig = scope_signature(SECRET, "v/2/", exp)
    # A valid signature for another folder cannot reach this one.
    r = await client.get(
        f"/v1/media/v/1/clip.mp4?exp={exp}&scope={quote('v/2/', safe='')}&sig={sig}"
    )
    assert r.status_code == 403
    # Widening the scope breaks the signature; so does an override or an expiry change.
    url = scoped("v/1/clip.mp4")
    assert (
        await client.get(url.replace(quote("v/1/", safe=""), quote("v/", safe="")))
    ).status_code == 403
    assert (await client.get(url + "&dl=x.mp4")).status_code == 403
    assert (await client.get(url.replace("exp=", "exp=1"))).status_code == 403
    expired = scoped("v/1/clip.mp4", ttl_s=-5)
    assert (await client.get(expired)).status_code == 403


def test_signer_refuses_keys_outside_its_scope_and_bad_scopes() -> None:
    signer = ScopedMediaSigner("http://t", SECRET, SCOPE, 1)
    for key in ("v/2/x", "v/1/../2/x", "v/1/.hidden", "v/1/a b", "v/10/x"):
        with pytest.raises(InvalidKey):
            signer.url(key)
    for scope in ("v/1", "", "/", "../", "v/../"):
        with pytest.raises(InvalidKey):
            ScopedMediaSigner("http://t", SECRET, scope, 1)
