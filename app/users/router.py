from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse

from app.deps import (
    AdminDep,
    AuthenticatedDep,
    ClientAddressDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
)
from app.idempotency.service import idempotent
from app.openapi_meta import errors
from app.pagination import Page, PageParams, page_params
from app.users import service
from app.users.models import Role
from app.users.schemas import MeUpdate, PersonOut, UserCreate, UserOut, UserUpdate

router = APIRouter(tags=["users"])

_IDEMPOTENCY = ["invalid_idempotency_key", "idempotency_key_reused"]
_IDEMPOTENCY_HELP = "Retries with the same key return the first response and create nothing new."


@router.get("/v1/me", summary="The caller", response_model=UserOut, responses=errors(401))
async def get_me(principal: PrincipalDep) -> UserOut:
    return UserOut.model_validate(principal.user)


@router.patch(
    "/v1/me",
    summary="Change the caller's name or password",
    description=(
        "A new `password` needs `current_password` and follows the rules of user creation; "
        "it ends every other login of the caller, their access tokens included (this one "
        "stays signed in). Wrong current passwords are throttled like failed sign-ins."
    ),
    response_model=UserOut,
    responses=errors(
        401,
        403,
        422,
        429,
        codes={
            403: ["current_password_invalid"],
            422: ["current_password_required"],
            429: ["login_throttled"],
        },
    ),
)
async def update_me(
    body: MeUpdate,
    session: SessionDep,
    settings: SettingsDep,
    authenticated: AuthenticatedDep,
    address: ClientAddressDep,
) -> UserOut:
    user = await service.update_me(
        session, settings, authenticated.principal, authenticated.session_id, body, address=address
    )
    return UserOut.model_validate(user)


@router.get(
    "/v1/people",
    summary="Find people of the caller's organization (any role): active users, by name",
    response_model=Page[PersonOut],
    responses=errors(401, 422, codes={422: ["invalid_cursor"]}),
)
async def list_people(
    session: SessionDep,
    principal: PrincipalDep,
    page: Annotated[PageParams, Depends(page_params)],
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Part of the name, any case."),
    ] = None,
    role: Role | None = None,
) -> Page[PersonOut]:
    people, cursor = await service.list_people(session, principal, page, q=q, role=role)
    return Page[PersonOut](items=[PersonOut.model_validate(p) for p in people], next_cursor=cursor)


@router.post(
    "/v1/users",
    summary="Create a user in the caller's organization (admin)",
    description=(
        "An email is unique within the organization (`409 email_taken`); accounts of the same "
        "email in other organizations are separate identities and are never revealed."
    ),
    status_code=201,
    response_model=UserOut,
    responses=errors(
        401,
        403,
        409,
        422,
        codes={409: ["email_taken", "idempotency_in_progress"], 422: _IDEMPOTENCY},
    ),
)
async def create_user(
    body: UserCreate,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    idempotency_key: Annotated[str | None, Header(description=_IDEMPOTENCY_HELP)] = None,
) -> JSONResponse:
    async def produce() -> tuple[int, dict[str, object]]:
        user = await service.create_user(session, admin, body)
        return 201, UserOut.model_validate(user).model_dump(mode="json")

    payload = service.create_user_fingerprint(body, settings.secret_key)
    response = await idempotent(session, admin, idempotency_key, "POST /v1/users", payload, produce)
    # Read from the answer, so a replay (the stored first answer) carries it too.
    response.headers["Location"] = f"/v1/users/{json.loads(bytes(response.body))['id']}"
    return response


@router.get(
    "/v1/users",
    summary="List the organization's users (admin)",
    response_model=Page[UserOut],
    responses=errors(401, 403, 422, codes={422: ["invalid_cursor"]}),
)
async def list_users(
    session: SessionDep, admin: AdminDep, page: Annotated[PageParams, Depends(page_params)]
) -> Page[UserOut]:
    users, cursor = await service.list_users(session, admin, page)
    return Page[UserOut](items=[UserOut.model_validate(u) for u in users], next_cursor=cursor)


@router.get(
    "/v1/users/{user_id}",
    summary="Get a user (admin)",
    response_model=UserOut,
    responses=errors(401, 403, 404, 422),
)
async def get_user(user_id: uuid.UUID, session: SessionDep, admin: AdminDep) -> UserOut:
    return UserOut.model_validate(await service.get_user(session, admin, user_id))


@router.patch(
    "/v1/users/{user_id}",
    summary="Update a user's name, role, password or active flag (admin)",
    description=(
        "A new `password` or `is_active: false` ends every login of the user: refresh tokens "
        "and access tokens alike (reactivating the user later revives none)."
    ),
    response_model=UserOut,
    responses=errors(401, 403, 404, 409, 422, codes={409: ["last_admin"]}),
)
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, session: SessionDep, admin: AdminDep
) -> UserOut:
    return UserOut.model_validate(await service.update_user(session, admin, user_id, body))
