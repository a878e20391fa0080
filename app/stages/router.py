from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app.deps import AdminDep, PrincipalDep, SessionDep
from app.openapi_meta import errors
from app.stages import service
from app.stages.schemas import KEY_PATTERN, StageCreate, StageOut, StageUpdate

router = APIRouter(prefix="/v1/stages", tags=["stages"])


@router.get(
    "",
    summary="The organization's sales stages and their skills, in order",
    response_model=list[StageOut],
    responses=errors(401),
)
async def list_stages(session: SessionDep, principal: PrincipalDep) -> list[StageOut]:
    return [StageOut.model_validate(s) for s in await service.list_stages(session, principal)]


@router.post(
    "",
    summary="Add a sales stage (admin)",
    status_code=201,
    response_model=StageOut,
    responses=errors(401, 403, 409, 422),
)
async def create_stage(body: StageCreate, session: SessionDep, admin: AdminDep) -> StageOut:
    return StageOut.model_validate(await service.create_stage(session, admin, body))


@router.patch(
    "/{key}",
    summary="Edit a stage's name, description, order or skills (admin)",
    response_model=StageOut,
    responses=errors(401, 403, 404, 422),
)
async def update_stage(
    key: Annotated[str, Path(pattern=KEY_PATTERN)],
    body: StageUpdate,
    session: SessionDep,
    admin: AdminDep,
) -> StageOut:
    return StageOut.model_validate(await service.update_stage(session, admin, key, body))
