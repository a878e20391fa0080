"""Signatures checked by the `standardwebhooks` package: a verifier nobody here wrote."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.webhooks import signing

BODY = json.dumps({"type": "clip.ready", "data": {"clip_id": "c1"}}).encode()


def now() -> int:
    # The verifier rejects timestamps more than 5 minutes from its clock.
    return int(time.time())


def test_new_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


def test_matches_the_specifications_test_vector() -> None:
    # The vector published with the Standard Webhooks reference libraries.
    signature = signing.sign(
        ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers_verify_with_one_secret() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_1", now(), BODY)
    assert set(headers) == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
    }
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_during_rotation_each_secret_alone_verifies() -> None:
    new, old = signing.new_secret(), signing.new_secret()
    headers = signing.headers([new, old], "msg_2", now(), BODY)
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2
    assert all(entry.startswith("v1,") for entry in entries)
    assert Webhook(new).verify(BODY, headers) == json.loads(BODY)
    assert Webhook(old).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)


def test_tampered_body_or_id_fails_verification() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_3", now(), BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)  # the control
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"c1", b"c2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_other"})


def test_shifted_timestamp_fails_verification() -> None:
    secret = signing.new_secret()
    ts = now()
    headers = signing.headers([secret], "msg_4", ts, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-timestamp": str(ts - 1)})


def test_body_is_signed_byte_for_byte() -> None:
    secret = signing.new_secret()
    body = b'{"name": "\xc3\xa9"}\n'  # non-ASCII and a trailing newline, as sent
    headers = signing.headers([secret], "msg_5", now(), body)
    assert Webhook(secret).verify(body, headers) == {"name": "é"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.rstrip(), headers)


def test_a_single_str_or_no_secret_is_an_error() -> None:
    secret = signing.new_secret()
    with pytest.raises(TypeError):
        signing.sign(secret, "msg", 1, b"{}")
    with pytest.raises(ValueError, match="at least one"):
        signing.sign([], "msg", 1, b"{}")
    with pytest.raises(ValueError, match="base64"):
        signing.sign(["whsec_not base64!"], "msg", 1, b"{}")
