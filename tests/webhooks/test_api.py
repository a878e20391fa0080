"""Webhooks through the API and a real worker: endpoints (admins), the fan-out of recorded
events, signed deliveries to a real HTTP receiver, retries, rotation, disabling.

NETWORK RULE of these tests: traffic goes to loopback only. Receivers listen on 127.0.0.1;
host names are answered by an injected resolver (never real DNS); the worker connects through
a connector that refuses, and reports, any address that is not loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpcore
import httpx
import pytest
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import app.tasks  # noqa: F401  (the composition root: the fan-out hook on recorded events)
from app.config import Settings
from app.db import utcnow
from app.events import service as events
from app.events.types import FEEDBACK_CREATED
from app.jobs.kinds import WEBHOOK_DELIVER
from app.jobs.models import Job, JobStatus
from app.jobs.registry import JobServices
from app.webhooks import service
from app.webhooks.delivery import LoopbackOnlyBackend, deliver, loopback_resolver
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.tasks import fail_stranded_deliveries, purge_deliveries
from tests.conftest import task_context
from tests.helpers.api import playable_clip
from tests.helpers.live_server import free_port
from tests.helpers.sql_count import statements_during
from tests.helpers.waiting import eventually
from workers.main import load_handlers
from workers.runtime import Worker

# --- a receiver, a resolver, a connector -----------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP/1.1 server on 127.0.0.1: answers each request with the next of
    ``statuses`` (then ``default``) and records it."""

    port: int = field(default_factory=free_port)
    statuses: list[int] = field(default_factory=list)
    default: int = 200
    requests: list[Received] = field(default_factory=list)
    server: asyncio.Server | None = None
    reply: bytes = b"ok"
    # When set, decides each status from the request instead.
    answer: Callable[[Received], int] | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            received = Received(request_line.split(" ")[1], headers, body)
            if self.answer is not None:
                status = self.answer(received)
            else:
                status = self.statuses.pop(0) if self.statuses else self.default
            self.requests.append(received)
            head = f"HTTP/1.1 {status} Answer\r\nContent-Length: {len(self.reply)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + self.reply)
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


class FakeResolver:
    """Answers from a table, in turn (the last answer repeats); records every question. An
    unknown name is an error (never real DNS)."""

    def __init__(self, answers: dict[str, list[list[str]]] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.answers:
            raise OSError(f"the test resolver does not know {host!r}")
        queue = self.answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]


class LoopbackConnector(httpcore.AsyncNetworkBackend):
    """Connects for real to loopback IPs only; anything else is recorded (the test then
    fails) and refused."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.connects: list[str] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            self.violations.append(f"{host}:{port}")
            raise httpcore.ConnectError(f"test connector: {host} is not loopback")
        self.connects.append(host)
        return await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.violations.append(path)
        raise httpcore.ConnectError("test connector: no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass
class Net:
    resolver: FakeResolver
    connector: LoopbackConnector


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    # Delayed retries are claimed within a poll interval.
    return make_settings(webhook_allow_loopback=True, job_poll_interval_s=0.05)  # type: ignore[no-any-return]


@pytest.fixture
def net(app: Any) -> Iterable[Net]:
    """The resolver of the API (app.state) and of the worker, and the worker's connector."""
    n = Net(FakeResolver(), LoopbackConnector())
    app.state.webhook_resolver = n.resolver
    yield n
    assert n.connector.violations == [], "a connection to a non-loopback address was attempted"


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "RETRY_SCHEDULE_S", (0.05, 0.05))
    monkeypatch.setattr(service, "RETRY_JITTER", 0.0)


@asynccontextmanager
async def worker(app: Any, net: Net) -> AsyncIterator[Worker]:
    """A real worker with the product's handlers, delivering through the test network."""
    w = Worker(
        app.state.settings,
        app.state.engine,
        app.state.sessionmaker,
        JobServices(
            storage=app.state.storage,
            webhook_resolver=net.resolver,
            webhook_connector=net.connector,
        ),
        load_handlers(),
        2,
        grace_s=5,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        yield w
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


# --- helpers ---------------------------------------------------------------------------------


async def create_webhook(
    client: httpx.AsyncClient, admin: Any, url: str, events: list[str], **extra: Any
) -> dict[str, Any]:
    r = await client.post(
        "/v1/webhooks", json={"url": url, "events": events, **extra}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def deliveries(
    client: httpx.AsyncClient, admin: Any, webhook_id: str
) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def settled(
    client: httpx.AsyncClient, admin: Any, webhook_id: str, count: int = 1
) -> list[dict[str, Any]]:
    """The endpoint's deliveries once ``count`` exist and none is pending."""

    async def probe() -> list[dict[str, Any]]:
        return await deliveries(client, admin, webhook_id)

    return await eventually(
        probe,
        until=lambda ds: len(ds) >= count and all(d["status"] != "pending" for d in ds),
        what="settled deliveries",
    )


async def post_feedback(client: httpx.AsyncClient, actor: Any, clip_id: str) -> dict[str, Any]:
    r = await client.post(
        f"/v1/clips/{clip_id}/feedback",
        json={"body": "Ask why before you demo.", "timestamp_ms": 1000},
        headers=actor.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def record_event(app: Any, org_id: str, type_: str = FEEDBACK_CREATED) -> str:
    async with app.state.sessionmaker.begin() as session:
        row = await events.record(
            session, org_id=uuid.UUID(org_id), type=type_, data={"id": str(uuid.uuid4())}
        )
    return str(row.id)


async def no_job_left(app: Any) -> bool:
    """Every delivery job has run (and succeeded: a job that found nothing to do succeeds)."""
    async with app.state.sessionmaker() as session:
        statuses = (
            await session.scalars(select(Job.status).where(Job.kind == WEBHOOK_DELIVER.name))
        ).all()
    return bool(statuses) and all(s == JobStatus.succeeded for s in statuses)


def verify(secret: str, received: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return payload


# --- endpoints -------------------------------------------------------------------------------


async def test_admins_manage_endpoints_and_see_the_secret_once(
    client: httpx.AsyncClient, make_org: Any, net: Net
) -> None:
    org = await make_org()
    r = await client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["clip.*", "feedback.created"],
              "description": "CRM sync"},
        headers=org.admin.headers,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["Location"] == f"/v1/webhooks/{created['id']}"
    assert created["secret"].startswith("whsec_")
    assert created["enabled"] is True and created["disabled_reason"] is None
    assert created["events"] == ["clip.*", "feedback.created"]
    assert created["description"] == "CRM sync"

    got = await client.get(r.headers["Location"], headers=org.admin.headers)
    assert got.status_code == 200
    assert "secret" not in got.json()
    listed = await client.get("/v1/webhooks", headers=org.admin.headers)
    assert listed.status_code == 200
    assert listed.json()["next_cursor"] is None
    assert [w["id"] for w in listed.json()["items"]] == [created["id"]]
    assert "secret" not in listed.json()["items"][0]

    patched = await client.patch(
        f"/v1/webhooks/{created['id']}",
        json={"events": ["*"], "description": "all of it", "enabled": False},
        headers=org.admin.headers,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["events"], body["description"], body["enabled"]) == (["*"], "all of it", False)
    assert body["disabled_at"] is not None and body["disabled_reason"] is None
    assert "secret" not in body
    enabled = await client.patch(
        f"/v1/webhooks/{created['id']}", json={"enabled": True}, headers=org.admin.headers
    )
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_at"] is None

    deleted = await client.delete(f"/v1/webhooks/{created['id']}", headers=org.admin.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/v1/webhooks/{created['id']}", headers=org.admin.headers)
    assert gone.status_code == 404


async def test_list_is_paginated(client: httpx.AsyncClient, make_org: Any, net: Net) -> None:
    org = await make_org()
    ids = [
        (await create_webhook(client, org.admin, f"http://127.0.0.1:9/{i}", ["*"]))["id"]
        for i in range(3)
    ]
    first = await client.get("/v1/webhooks", params={"limit": 2}, headers=org.admin.headers)
    page = first.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    second = await client.get(
        "/v1/webhooks", params={"limit": 2, "cursor": page["next_cursor"]},
        headers=org.admin.headers,
    )  # fmt: skip
    seen = [w["id"] for w in page["items"] + second.json()["items"]]
    assert seen == list(reversed(ids))
    assert second.json()["next_cursor"] is None


async def test_create_is_idempotent(client: httpx.AsyncClient, make_org: Any, net: Net) -> None:
    org = await make_org()
    body = {"url": "http://127.0.0.1:9/hook", "events": ["feedback.*"]}
    headers = {**org.admin.headers, "Idempotency-Key": "create-hook-1"}
    first = await client.post("/v1/webhooks", json=body, headers=headers)
    again = await client.post("/v1/webhooks", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    listed = await client.get("/v1/webhooks", headers=org.admin.headers)
    assert len(listed.json()["items"]) == 1
    other = await client.post("/v1/webhooks", json={**body, "events": ["clip.*"]}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


async def test_unknown_event_types_are_refused(
    client: httpx.AsyncClient, make_org: Any, net: Net
) -> None:
    org = await make_org()
    r = await client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["clip.*", "clip.exploded", "nope.*"]},
        headers=org.admin.headers,
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "unknown_event_type"
    assert r.json()["error"]["details"] == ["clip.exploded", "nope.*"]
    hook = await create_webhook(client, org.admin, "http://127.0.0.1:9/hook", ["*"])
    patched = await client.patch(
        f"/v1/webhooks/{hook['id']}", json={"events": ["feedback.liked"]}, headers=org.admin.headers
    )
    assert patched.status_code == 422
    assert patched.json()["error"]["code"] == "unknown_event_type"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://sneaky.example/hook",  # resolves to loopback
        "http://half.example/hook",  # one public, one private address
        "http://user:pw@hooks.example/hook",
        "ftp://hooks.example/hook",
        "http://nowhere.example/hook",  # does not resolve
    ],
)
async def test_destinations_refused_at_create(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net, url: str
) -> None:
    app.state.settings.webhook_allow_loopback = False
    net.resolver.answers.update(
        {
            "sneaky.example": [["127.0.0.1"]],
            "half.example": [["93.184.216.34", "192.168.1.10"]],
            "hooks.example": [["93.184.216.34"]],
        }
    )
    org = await make_org()
    r = await client.post(
        "/v1/webhooks", json={"url": url, "events": ["*"]}, headers=org.admin.headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "webhook_url_not_allowed"
    assert r.json()["error"]["details"]["reason"]
    assert (await client.get("/v1/webhooks", headers=org.admin.headers)).json()["items"] == []


async def test_refusals_depend_on_the_settings(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net
) -> None:
    net.resolver.answers["hooks.example"] = [["93.184.216.34"]]
    org = await make_org()
    # Loopback only with the setting; private addresses never.
    await create_webhook(client, org.admin, "http://127.0.0.1:9/hook", ["*"])
    r = await client.post(
        "/v1/webhooks", json={"url": "http://10.1.2.3/", "events": ["*"]}, headers=org.admin.headers
    )
    assert r.json()["error"]["code"] == "webhook_url_not_allowed"
    # A public name is resolved through the injected resolver, never real DNS.
    hook = await create_webhook(client, org.admin, "https://hooks.example/in", ["*"])
    assert net.resolver.calls == ["hooks.example"]
    # PATCH checks a new URL as create does.
    patched = await client.patch(
        f"/v1/webhooks/{hook['id']}", json={"url": "http://169.254.169.254/"},
        headers=org.admin.headers,
    )  # fmt: skip
    assert patched.status_code == 422
    assert patched.json()["error"]["code"] == "webhook_url_not_allowed"
    # In production: https only.
    app.state.settings.env = "production"
    try:
        plain = await client.post(
            "/v1/webhooks", json={"url": "http://hooks.example/in", "events": ["*"]},
            headers=org.admin.headers,
        )  # fmt: skip
        assert plain.status_code == 422
        assert plain.json()["error"]["details"] == {"reason": "scheme"}
    finally:
        app.state.settings.env = "development"


async def test_admins_only_and_tenant_scoped(
    client: httpx.AsyncClient, make_org: Any, net: Net
) -> None:
    org, other = await make_org("Acme"), await make_org("Globex")
    hook = await create_webhook(client, org.admin, "http://127.0.0.1:9/hook", ["*"])
    base = f"/v1/webhooks/{hook['id']}"
    for role in ("rep", "top_performer"):
        user = await org.add_user(role)
        for method, path in (("GET", "/v1/webhooks"), ("POST", "/v1/webhooks"), ("GET", base)):
            r = await client.request(
                method, path, headers=user.headers,
                json={"url": "http://127.0.0.1:9/", "events": ["*"]} if method == "POST" else None,
            )  # fmt: skip
            assert r.status_code == 403, (role, method, path, r.text)
    calls = [
        ("GET", base, None),
        ("PATCH", base, {"description": "mine now"}),
        ("POST", f"{base}/rotate-secret", None),
        ("POST", f"{base}/test", None),
        ("GET", f"{base}/deliveries", None),
        ("DELETE", base, None),
    ]
    for method, path, body in calls:
        r = await client.request(method, path, json=body, headers=other.admin.headers)
        assert r.status_code == 404, (method, path, r.text)
    assert (await client.get("/v1/webhooks", headers=other.admin.headers)).json()["items"] == []
    assert (await client.get(base, headers=org.admin.headers)).json()["description"] == ""


# --- fan-out and delivery --------------------------------------------------------------------


async def test_feedback_is_delivered_signed_with_the_event_as_body(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net, receiver: Receiver
) -> None:
    org = await make_org()
    rep, top = await org.add_user("rep"), await org.add_user("top_performer")
    hook = await create_webhook(client, org.admin, receiver.url("/in?src=pp"), ["feedback.*"])
    quiet = await create_webhook(client, org.admin, receiver.url("/quiet"), ["exemplar.*"])
    clip_id = await playable_clip(app, client, rep)
    thread = await post_feedback(client, top, clip_id)

    async with worker(app, net):
        [delivery] = await settled(client, org.admin, hook["id"])
    assert len(receiver.requests) == 1
    received = receiver.requests[0]
    assert received.path == "/in?src=pp"
    payload = verify(hook["secret"], received)
    assert received.headers["content-type"] == "application/json"

    listed = await client.get(
        "/v1/events", params={"types": "feedback.created"}, headers=org.admin.headers
    )
    [event] = listed.json()["items"]
    assert payload == event  # the event exactly as the API shows it, seq included
    assert payload["data"]["id"] == thread["id"]
    assert received.headers["webhook-id"] == event["id"]
    assert delivery["event_id"] == event["id"]
    assert delivery["event_type"] == "feedback.created"
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200
    assert delivery["last_latency_ms"] >= 0
    assert delivery["last_error"] is None and delivery["next_attempt_at"] is None
    # The notification the post caused is an event too, not of the subscribed types.
    assert await deliveries(client, org.admin, quiet["id"]) == []

    detail = await client.get(
        f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}", headers=org.admin.headers
    )
    assert detail.status_code == 200
    assert detail.json()["payload"] == event
    [attempt] = detail.json()["attempt_log"]
    assert attempt["number"] == 1 and attempt["status_code"] == 200
    assert attempt["response_excerpt"] == "ok"


async def test_what_a_receiver_answers_is_stored_safely(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net, receiver: Receiver
) -> None:
    receiver.reply = b"\x00accepted\x00 " + b"x" * 5000
    org = await make_org()
    hook = await create_webhook(client, org.admin, receiver.url(), ["webhook.test"])
    await client.post(f"/v1/webhooks/{hook['id']}/test", headers=org.admin.headers)
    async with worker(app, net):
        [delivery] = await settled(client, org.admin, hook["id"])
    assert delivery["status"] == "succeeded"
    detail = await client.get(
        f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}", headers=org.admin.headers
    )
    excerpt = detail.json()["attempt_log"][0]["response_excerpt"]
    assert excerpt.startswith("accepted x") and len(excerpt) < 1100


async def test_a_transaction_reads_the_subscriptions_once(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net
) -> None:
    org = await make_org()
    rep, top = await org.add_user("rep"), await org.add_user("top_performer")
    clip_id = await playable_clip(app, client, rep)
    # No webhooks: the post records two events (feedback.created, notification.created)
    # and never reads webhook_endpoints (the outbox knows the org has no subscribers).
    with statements_during(app) as statements:
        await post_feedback(client, top, clip_id)
    reads = [s for s in statements if "FROM webhook_endpoints" in s]
    assert reads == []
    # With one: still once, and a delivery per matching event.
    hook = await create_webhook(client, org.admin, "http://127.0.0.1:9/", ["*"])
    with statements_during(app) as statements:
        await post_feedback(client, top, clip_id)
    assert len([s for s in statements if "FROM webhook_endpoints" in s]) == 1
    types = {d["event_type"] for d in await deliveries(client, org.admin, hook["id"])}
    assert types == {"feedback.created", "notification.created"}
    # Disabled again: no subscribers, no reads, no deliveries.
    r = await client.patch(
        f"/v1/webhooks/{hook['id']}", json={"enabled": False}, headers=org.admin.headers
    )
    assert r.status_code == 200, r.text
    before = len(await deliveries(client, org.admin, hook["id"]))
    with statements_during(app) as statements:
        await post_feedback(client, top, clip_id)
    assert [s for s in statements if "FROM webhook_endpoints" in s] == []
    assert len(await deliveries(client, org.admin, hook["id"])) == before


async def test_a_receiver_that_fails_gets_retries_with_the_same_id(
    app: Any,
    client: httpx.AsyncClient,
    make_org: Any,
    net: Net,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "RETRY_SCHEDULE_S", (0.05, 0.05, 0.05, 0.05))
    receiver.statuses = [503, 500, 404]
    org = await make_org()
    hook = await create_webhook(client, org.admin, receiver.url(), ["feedback.*"])
    event_id = await record_event(app, org.org_id)
    async with worker(app, net):
        [delivery] = await settled(client, org.admin, hook["id"])
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 4
    assert [r.headers["webhook-id"] for r in receiver.requests] == [event_id] * 4
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1  # the same bytes on every attempt
    for r in receiver.requests:
        verify(hook["secret"], r)
    detail = await client.get(
        f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}", headers=org.admin.headers
    )
    log = detail.json()["attempt_log"]
    assert [a["status_code"] for a in log] == [503, 500, 404, 200]
    assert [a["number"] for a in log] == [1, 2, 3, 4]


async def test_a_receiver_that_is_down_shows_retries_then_succeeds(
    app: Any,
    client: httpx.AsyncClient,
    make_org: Any,
    net: Net,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two quick retries, then one an hour away: the manual retry brings it forward.
    monkeypatch.setattr(service, "RETRY_SCHEDULE_S", (0.05, 0.05, 3600.0))
    down = Receiver()  # not listening yet: connections are refused
    org = await make_org()
    hook = await create_webhook(client, org.admin, down.url(), ["feedback.*"])
    event_id = await record_event(app, org.org_id)
    async with worker(app, net):

        async def probe() -> list[dict[str, Any]]:
            return await deliveries(client, org.admin, hook["id"])

        [waiting] = await eventually(probe, until=lambda ds: ds and ds[0]["attempts"] == 3)
        assert waiting["status"] == "pending"
        assert waiting["last_status_code"] is None
        assert waiting["last_error"].startswith("connect_error")
        assert waiting["next_attempt_at"] > waiting["last_attempt_at"]
        assert down.requests == []

        await down.start()
        try:
            retried = await client.post(
                f"/v1/webhooks/{hook['id']}/deliveries/{waiting['id']}/retry",
                headers=org.admin.headers,
            )
            assert retried.status_code == 202, retried.text
            assert retried.json()["status"] == "pending"
            [done] = await settled(client, org.admin, hook["id"])
        finally:
            await down.stop()
    assert done["status"] == "succeeded" and done["attempts"] == 4
    [received] = down.requests
    assert received.headers["webhook-id"] == event_id
    verify(hook["secret"], received)


async def test_a_dns_answer_that_changed_is_a_refused_attempt(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net, receiver: Receiver
) -> None:
    # Loopback (allowed by the setting) when created; a private address at delivery.
    net.resolver.answers["flaky.example"] = [["127.0.0.1"], ["10.0.0.7"]]
    org = await make_org()
    hook = await create_webhook(
        client, org.admin, f"http://flaky.example:{receiver.port}/", ["webhook.test"]
    )
    sent = await client.post(f"/v1/webhooks/{hook['id']}/test", headers=org.admin.headers)
    assert sent.status_code == 202
    async with worker(app, net):
        [delivery] = await settled(client, org.admin, hook["id"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert delivery["last_error"] == "webhook_url_not_allowed: private address 10.0.0.7"
    assert receiver.requests == [] and net.connector.connects == []


async def test_410_disables_the_endpoint_and_tells_the_admins(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net, receiver: Receiver
) -> None:
    receiver.statuses = [410]
    org = await make_org()
    hook = await create_webhook(client, org.admin, receiver.url(), ["feedback.*"])
    await record_event(app, org.org_id)
    async with worker(app, net):
        [delivery] = await settled(client, org.admin, hook["id"])
        assert delivery["status"] == "failed" and delivery["last_status_code"] == 410
        assert delivery["attempts"] == 1
        got = (await client.get(f"/v1/webhooks/{hook['id']}", headers=org.admin.headers)).json()
        assert got["enabled"] is False and got["disabled_reason"] == "gone"
        notes = await client.get("/v1/notifications", headers=org.admin.headers)
        [note] = [n for n in notes.json()["items"] if n["kind"] == "webhook_disabled"]
        assert note["data"] == {"webhook_id": hook["id"], "url": hook["url"], "reason": "gone"}

        # Disabled: no new deliveries, and no test or retry.
        await record_event(app, org.org_id)
        assert len(await deliveries(client, org.admin, hook["id"])) == 1
        for path in ("test", f"deliveries/{delivery['id']}/retry"):
            r = await client.post(f"/v1/webhooks/{hook['id']}/{path}", headers=org.admin.headers)
            assert r.status_code == 409 and r.json()["error"]["code"] == "webhook_disabled"

        # Re-enabled: deliveries resume.
        r = await client.patch(
            f"/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=org.admin.headers
        )
        assert r.json()["enabled"] is True and r.json()["disabled_reason"] is None
        await record_event(app, org.org_id)
        ds = await settled(client, org.admin, hook["id"], count=2)
    assert ds[0]["status"] == "succeeded"
    assert len(receiver.requests) == 2


async def test_failing_past_the_last_retry_disables_the_endpoint(
    app: Any,
    client: httpx.AsyncClient,
    make_org: Any,
    net: Net,
    receiver: Receiver,
    fast_retries: None,
) -> None:
    receiver.default = 500
    org = await make_org()
    hook = await create_webhook(client, org.admin, receiver.url(), ["feedback.*"])
    await record_event(app, org.org_id)
    async with worker(app, net):
        [delivery] = await settled(client, org.admin, hook["id"])
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 1 + len(service.RETRY_SCHEDULE_S)
    assert delivery["last_status_code"] == 500 and delivery["next_attempt_at"] is None
    got = (await client.get(f"/v1/webhooks/{hook['id']}", headers=org.admin.headers)).json()
    assert got["enabled"] is False and got["disabled_reason"] == "failing"
    notes = await client.get("/v1/notifications", headers=org.admin.headers)
    assert [
        n["data"]["reason"] for n in notes.json()["items"] if n["kind"] == "webhook_disabled"
    ] == ["failing"]


async def test_an_endpoint_that_refuses_one_payload_but_takes_later_ones_stays_enabled(
    app: Any,
    client: httpx.AsyncClient,
    make_org: Any,
    net: Net,
    receiver: Receiver,
    fast_retries: None,
) -> None:
    org = await make_org()
    hook = await create_webhook(client, org.admin, receiver.url(), ["feedback.*"])
    first = await record_event(app, org.org_id)
    await record_event(app, org.org_id)
    # The receiver refuses the first event every time, and takes the next one.
    receiver.answer = lambda r: 400 if r.headers["webhook-id"] == first else 200
    async with worker(app, net):
        ds = await settled(client, org.admin, hook["id"], count=2)
    by_event = {d["event_id"]: d for d in ds}
    assert by_event[first]["status"] == "failed"
    assert by_event[first]["attempts"] == 1 + len(service.RETRY_SCHEDULE_S)
    assert [d["status"] for d in ds].count("succeeded") == 1
    got = (await client.get(f"/v1/webhooks/{hook['id']}", headers=org.admin.headers)).json()
    assert got["enabled"] is True


async def test_disabling_fails_pending_deliveries_and_stops_new_ones(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net
) -> None:
    org = await make_org()
    hook = await create_webhook(client, org.admin, "http://127.0.0.1:9/", ["feedback.*"])
    await record_event(app, org.org_id)  # no worker: it stays pending
    [pending] = await deliveries(client, org.admin, hook["id"])
    assert pending["status"] == "pending" and pending["attempts"] == 0
    r = await client.patch(
        f"/v1/webhooks/{hook['id']}", json={"enabled": False}, headers=org.admin.headers
    )
    assert r.status_code == 200
    [failed] = await deliveries(client, org.admin, hook["id"])
    assert failed["status"] == "failed" and failed["last_error"] == "webhook_disabled"
    await record_event(app, org.org_id)
    assert len(await deliveries(client, org.admin, hook["id"])) == 1
    # Its job finds nothing to do: nothing is sent (port 9 would refuse) and nothing changes.
    async with worker(app, net):
        await eventually(lambda: no_job_left(app), what="the delivery jobs to finish")
    assert (await deliveries(client, org.admin, hook["id"]))[0]["attempts"] == 0
    assert net.connector.connects == []
    listed = await client.get(
        f"/v1/webhooks/{hook['id']}/deliveries", params={"status": "pending"},
        headers=org.admin.headers,
    )  # fmt: skip
    assert listed.json()["items"] == []


async def test_rotation_signs_with_both_secrets_for_a_day(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net, receiver: Receiver
) -> None:
    org = await make_org()
    hook = await create_webhook(client, org.admin, receiver.url(), ["feedback.*"])
    old = hook["secret"]
    r = await client.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=org.admin.headers)
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert r.json()["previous_secret_expires_at"] is not None
    assert (
        "secret"
        not in (await client.get(f"/v1/webhooks/{hook['id']}", headers=org.admin.headers)).json()
    )

    await record_event(app, org.org_id)
    async with worker(app, net):
        await settled(client, org.admin, hook["id"])
        [both] = receiver.requests
        assert len(both.headers["webhook-signature"].split(" ")) == 2
        assert verify(old, both) == verify(new, both)

        # A day later only the new secret signs.
        async with app.state.sessionmaker.begin() as session:
            await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == uuid.UUID(hook["id"]))
                .values(previous_secret_expires_at=utcnow() - timedelta(seconds=1))
            )
        await record_event(app, org.org_id)
        await settled(client, org.admin, hook["id"], count=2)
    one = receiver.requests[1]
    assert len(one.headers["webhook-signature"].split(" ")) == 1
    verify(new, one)
    with pytest.raises(WebhookVerificationError):
        verify(old, one)


async def test_rotation_is_idempotent_with_a_key(
    client: httpx.AsyncClient, make_org: Any, net: Net
) -> None:
    org = await make_org()
    hook = await create_webhook(client, org.admin, "http://127.0.0.1:9/", ["*"])
    headers = {**org.admin.headers, "Idempotency-Key": "rotate-1"}
    first = await client.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=headers)
    again = await client.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=headers)
    assert first.json()["secret"] == again.json()["secret"] != hook["secret"]
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_the_test_event_goes_to_one_endpoint_and_is_not_stored(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net, receiver: Receiver
) -> None:
    org = await make_org()
    hook = await create_webhook(client, org.admin, receiver.url("/one"), ["clip.ready"])
    other = await create_webhook(client, org.admin, receiver.url("/other"), ["*"])
    r = await client.post(f"/v1/webhooks/{hook['id']}/test", headers=org.admin.headers)
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["event_type"] == "webhook.test" and sent["status"] == "pending"
    async with worker(app, net):
        [delivery] = await settled(client, org.admin, hook["id"])
    assert delivery["id"] == sent["id"] and delivery["status"] == "succeeded"
    [received] = receiver.requests
    assert received.path == "/one"
    payload = verify(hook["secret"], received)
    assert payload["type"] == "webhook.test" and payload["seq"] == 0
    assert payload["id"] == sent["event_id"] == received.headers["webhook-id"]
    assert payload["data"]["webhook_id"] == hook["id"]
    assert await deliveries(client, org.admin, other["id"]) == []
    listed = await client.get("/v1/events", headers=org.admin.headers)
    assert [e for e in listed.json()["items"] if e["type"] == "webhook.test"] == []


async def test_a_retry_of_a_finished_delivery_sends_the_same_event_once_more(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net, receiver: Receiver
) -> None:
    org = await make_org()
    hook = await create_webhook(client, org.admin, receiver.url(), ["feedback.*"])
    event_id = await record_event(app, org.org_id)
    async with worker(app, net):
        [first] = await settled(client, org.admin, hook["id"])
        r = await client.post(
            f"/v1/webhooks/{hook['id']}/deliveries/{first['id']}/retry", headers=org.admin.headers
        )
        assert r.status_code == 202
        await eventually(lambda: len(receiver.requests) == 2)
        [again] = await settled(client, org.admin, hook["id"])
    assert again["attempts"] == 2 and again["status"] == "succeeded"
    assert [x.headers["webhook-id"] for x in receiver.requests] == [event_id, event_id]
    assert receiver.requests[0].body == receiver.requests[1].body
    missing = await client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{uuid.uuid4()}/retry", headers=org.admin.headers
    )
    assert missing.status_code == 404


async def test_deleting_an_endpoint_drops_its_log_and_its_jobs_do_nothing(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net, receiver: Receiver
) -> None:
    org = await make_org()
    hook = await create_webhook(client, org.admin, receiver.url(), ["feedback.*"])
    await record_event(app, org.org_id)
    r = await client.delete(f"/v1/webhooks/{hook['id']}", headers=org.admin.headers)
    assert r.status_code == 204
    async with app.state.sessionmaker() as session:
        left = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert left == 0
    async with worker(app, net):
        await eventually(lambda: no_job_left(app), what="the delivery jobs to finish")
    assert receiver.requests == []


async def test_stranded_deliveries_fail_and_old_ones_are_purged(
    app: Any, client: httpx.AsyncClient, make_org: Any, net: Net
) -> None:
    org = await make_org()
    hook = await create_webhook(client, org.admin, "http://127.0.0.1:9/", ["feedback.*"])
    await record_event(app, org.org_id)
    # Its job died (crashed workers used up its runs) before recording an attempt.
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Job).where(Job.kind == WEBHOOK_DELIVER.name).values(status=JobStatus.dead)
        )
    await fail_stranded_deliveries(task_context(app))
    [delivery] = await deliveries(client, org.admin, hook["id"])
    assert delivery["status"] == "failed" and delivery["last_error"] == "delivery_job_failed"

    await purge_deliveries(task_context(app))  # within the retention: kept
    assert len(await deliveries(client, org.admin, hook["id"])) == 1
    async with app.state.sessionmaker.begin() as session:
        assert await service.purge_deliveries(session, retention_days=0) == 1
    assert await deliveries(client, org.admin, hook["id"]) == []


async def test_an_organization_has_a_bounded_number_of_webhooks(
    client: httpx.AsyncClient, make_org: Any, net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "MAX_WEBHOOKS_PER_ORG", 2)
    org = await make_org()
    for _ in range(2):
        await create_webhook(client, org.admin, "http://127.0.0.1:9/", ["*"])
    r = await client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/", "events": ["*"]},
        headers=org.admin.headers,
    )  # fmt: skip
    assert r.status_code == 409 and r.json()["error"]["code"] == "webhook_limit_reached"


def test_the_api_process_fans_out_without_a_worker() -> None:
    """The API records events in processes that run no worker (production): the fan-out hook
    must be wired by the application itself, not only by the worker's handler modules."""
    code = (
        "from app.main import create_app\n"
        "from app.events import service\n"
        "from app.webhooks.service import fan_out\n"
        "assert fan_out in service._recorded_hooks, 'fan-out hook not registered'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_payload_body_is_compact_json() -> None:
    body = service._body({"id": "x", "data": {"é": 1}})
    assert body == '{"id":"x","data":{"é":1}}'
    assert json.loads(body) == {"id": "x", "data": {"é": 1}}


# --- the loopback sandbox (for test servers driven by outside tools) -------------------------


class NoConnect(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append(host)
        raise httpcore.ConnectError("the test forbids connecting")


async def test_the_sandbox_keeps_deliveries_on_loopback(receiver: Receiver) -> None:
    # Any name reaches the local receiver; nothing is resolved by DNS.
    result = await deliver(
        f"http://hooks.example:{receiver.port}/in",
        b"{}",
        {},
        resolver=loopback_resolver,
        connector=LoopbackOnlyBackend(),
        allow_loopback=True,
        require_https=False,
    )
    assert result.status_code == 200, result
    assert receiver.requests[0].headers["host"] == f"hooks.example:{receiver.port}"
    # A public address literal is never connected to.
    inner = NoConnect()
    refused = await deliver(
        "http://93.184.216.34/in",
        b"{}",
        {},
        resolver=loopback_resolver,
        connector=LoopbackOnlyBackend(inner),
        allow_loopback=True,
        require_https=False,
    )
    assert refused.status_code is None and refused.error is not None
    assert "loopback" in refused.error and inner.calls == []


def test_egress_follows_the_settings(settings: Settings) -> None:
    rules = service.egress(settings)
    assert (rules.resolver, rules.connector) == (None, None)  # the system's
    assert rules.allow_loopback is True and rules.require_https is False
    production = settings.model_copy(update={"env": "production", "webhook_allow_loopback": False})
    strict = service.egress(production)
    assert strict.allow_loopback is False and strict.require_https is True
