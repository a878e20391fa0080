from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse

from app.deps import AdminDep, SessionDep, SettingsDep
from app.idempotency.service import idempotent
from app.openapi_meta import errors
from app.pagination import Page, PageParams, page_params
from app.webhooks import service
from app.webhooks.delivery import REFUSED_CODE
from app.webhooks.models import DeliveryStatus
from app.webhooks.schemas import (
    DeliveryDetail,
    DeliveryOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

IDEMPOTENCY_HELP = "Retries with the same key return the first response and create nothing new."
_IDEMPOTENCY = ["invalid_idempotency_key", "idempotency_key_reused"]
_ENDPOINT_CODES = [REFUSED_CODE, "unknown_event_type"]


async def get_egress(request: Request, settings: SettingsDep) -> service.Egress:
    """Where this app lets webhooks go; ``app.state.webhook_resolver`` (tests) answers DNS."""
    return service.egress(settings, getattr(request.app.state, "webhook_resolver", None))


EgressDep = Annotated[service.Egress, Depends(get_egress)]


@router.post(
    "",
    summary="Create a webhook endpoint (admins); its signing secret is shown only here",
    description="Deliveries are signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, "
    "`webhook-signature`) with the `secret` of this answer. The URL's host must resolve to "
    "public addresses only (`422 webhook_url_not_allowed`).",
    status_code=201,
    response_model=WebhookWithSecret,
    responses=errors(
        401,
        403,
        409,
        422,
        codes={
            409: ["idempotency_in_progress", "webhook_limit_reached"],
            422: [*_ENDPOINT_CODES, *_IDEMPOTENCY],
        },
    ),
)
async def create_webhook(
    body: WebhookCreate,
    session: SessionDep,
    principal: AdminDep,
    rules: EgressDep,
    idempotency_key: Annotated[str | None, Header(description=IDEMPOTENCY_HELP)] = None,
) -> JSONResponse:
    async def produce() -> tuple[int, dict[str, object]]:
        endpoint = await service.create_webhook(session, rules, principal, body)
        return 201, WebhookWithSecret.with_secret(endpoint).model_dump(mode="json")

    response = await idempotent(
        session, principal, idempotency_key, "POST /v1/webhooks", body.model_dump(mode="json"),
        produce,
    )  # fmt: skip
    # Read from the answer, so a replay (the stored first answer) carries it too.
    response.headers["Location"] = f"/v1/webhooks/{json.loads(bytes(response.body))['id']}"
    return response


@router.get(
    "",
    summary="List the organization's webhook endpoints, newest first (admins)",
    response_model=Page[WebhookOut],
    responses=errors(401, 403, 422, codes={422: ["invalid_cursor"]}),
)
async def list_webhooks(
    session: SessionDep,
    principal: AdminDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[WebhookOut]:
    items, cursor = await service.list_webhooks(session, principal, page)
    return Page[WebhookOut](items=[WebhookOut.of(e) for e in items], next_cursor=cursor)


@router.get(
    "/{webhook_id}",
    summary="Get a webhook endpoint (admins)",
    response_model=WebhookOut,
    responses=errors(401, 403, 404, 422),
)
async def get_webhook(
    webhook_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> WebhookOut:
    return WebhookOut.of(await service.get_webhook(session, principal, webhook_id))


@router.patch(
    "/{webhook_id}",
    summary="Change a webhook's URL, events or description; disable or re-enable it (admins)",
    response_model=WebhookOut,
    responses=errors(401, 403, 404, 422, codes={422: _ENDPOINT_CODES}),
)
async def update_webhook(
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
    session: SessionDep,
    principal: AdminDep,
    rules: EgressDep,
) -> WebhookOut:
    endpoint = await service.update_webhook(session, rules, principal, webhook_id, body)
    return WebhookOut.of(endpoint)


@router.delete(
    "/{webhook_id}",
    summary="Delete a webhook endpoint and its delivery log (admins)",
    status_code=204,
    responses=errors(401, 403, 404, 422),
)
async def delete_webhook(
    webhook_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> Response:
    await service.delete_webhook(session, principal, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    summary="Replace the signing secret (admins); the old one also signs for 24 hours",
    description="The new `secret` is shown only in this answer. Until "
    "`previous_secret_expires_at`, `webhook-signature` carries both signatures "
    "(space-separated), so receivers can switch secrets without missing a delivery.",
    response_model=WebhookWithSecret,
    responses=errors(
        401,
        403,
        404,
        409,
        422,
        codes={409: ["idempotency_in_progress"], 422: _IDEMPOTENCY},
    ),
)
async def rotate_webhook_secret(
    webhook_id: uuid.UUID,
    session: SessionDep,
    principal: AdminDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="Retries with the same key return the first response (the same "
               "new secret) and rotate nothing more."),
    ] = None,
) -> JSONResponse:  # fmt: skip
    async def produce() -> tuple[int, dict[str, object]]:
        endpoint = await service.rotate_secret(session, principal, webhook_id)
        return 200, WebhookWithSecret.with_secret(endpoint).model_dump(mode="json")

    scope = f"POST /v1/webhooks/{webhook_id}/rotate-secret"
    return await idempotent(session, principal, idempotency_key, scope, {}, produce)


@router.get(
    "/{webhook_id}/deliveries",
    summary="The endpoint's delivery log, newest first (admins)",
    response_model=Page[DeliveryOut],
    responses=errors(401, 403, 404, 422, codes={422: ["invalid_cursor"]}),
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    session: SessionDep,
    principal: AdminDep,
    page: Annotated[PageParams, Depends(page_params)],
    status: DeliveryStatus | None = None,
) -> Page[DeliveryOut]:
    items, cursor = await service.list_deliveries(session, principal, webhook_id, status, page)
    return Page[DeliveryOut](items=[DeliveryOut.of(d) for d in items], next_cursor=cursor)


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    summary="A delivery with its body and every attempt (admins)",
    response_model=DeliveryDetail,
    responses=errors(401, 403, 404, 422),
)
async def get_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> DeliveryDetail:
    found, attempts = await service.get_delivery(session, principal, webhook_id, delivery_id)
    return DeliveryDetail.detail(found, attempts)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    summary="Attempt a delivery again now, with the same body and webhook-id (admins)",
    description="A pending delivery keeps its retry schedule after this attempt; a finished "
    "one (succeeded or failed) gets this one attempt.",
    status_code=202,
    response_model=DeliveryOut,
    responses=errors(401, 403, 404, 409, 422, codes={409: ["webhook_disabled"]}),
)
async def retry_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> DeliveryOut:
    return DeliveryOut.of(await service.retry_delivery(session, principal, webhook_id, delivery_id))


@router.post(
    "/{webhook_id}/test",
    summary="Send a webhook.test event to this endpoint only (admins)",
    description="The event is not stored (its `seq` is 0) and is attempted once; follow it in "
    "the delivery log.",
    status_code=202,
    response_model=DeliveryOut,
    responses=errors(401, 403, 404, 409, 422, codes={409: ["webhook_disabled"]}),
)
async def test_webhook(
    webhook_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> DeliveryOut:
    return DeliveryOut.of(await service.send_test(session, principal, webhook_id))
