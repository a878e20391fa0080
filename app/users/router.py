from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from app.deps import AdminDep, PrincipalDep, SessionDep
from app.openapi_meta import errors
from app.pagination import Page, PageParams, page_params
from app.users import service
from app.users.schemas import UserCreate, UserOut, UserUpdate

router = APIRouter(tags=["users"])


@router.get("/v1/me", summary="The caller", response_model=UserOut, responses=errors(401))
async def get_me(principal: PrincipalDep) -> UserOut:
    return UserOut.model_validate(principal.user)


@router.post(
    "/v1/users",
    summary="Create a user in the caller's organization (admin)",
    status_code=201,
    response_model=UserOut,
    responses=errors(401, 403, 409, 422),
)
async def create_user(body: UserCreate, session: SessionDep, admin: AdminDep) -> UserOut:
    return UserOut.model_validate(await service.create_user(session, admin, body))


@router.get(
    "/v1/users",
    summary="List the organization's users (admin)",
    response_model=Page[UserOut],
    responses=errors(401, 403, 422),
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
    response_model=UserOut,
    responses=errors(401, 403, 404, 409, 422),
)
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, session: SessionDep, admin: AdminDep
) -> UserOut:
    return UserOut.model_validate(await service.update_user(session, admin, user_id, body))
