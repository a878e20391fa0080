from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Header, Path
from fastapi.responses import JSONResponse

from app.deps import AdminDep, PrincipalDep, SessionDep
from app.idempotency.service import idempotent
from app.openapi_meta import errors
from app.stages import service
from app.stages.schemas import KEY_PATTERN, StageCreate, StageOut, StageUpdate

router = APIRouter(prefix="/v1/stages", tags=["stages"])

_IDEMPOTENCY_HELP = "Retries with the same key return the first response and create nothing new."


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
    responses=errors(
        401,
        403,
        409,
        422,
        codes={
            409: ["stage_exists", "idempotency_in_progress"],
            422: ["invalid_idempotency_key", "idempotency_key_reused"],
        },
    ),
)
async def create_stage(
    body: StageCreate,
    session: SessionDep,
    admin: AdminDep,
    idempotency_key: Annotated[str | None, Header(description=_IDEMPOTENCY_HELP)] = None,
) -> JSONResponse:
    async def produce() -> tuple[int, dict[str, object]]:
        stage = await service.create_stage(session, admin, body)
        return 201, StageOut.model_validate(stage).model_dump(mode="json")

    response = await idempotent(
        session, admin, idempotency_key, "POST /v1/stages", body.model_dump(mode="json"), produce
    )
    # Read from the answer, so a replay (the stored first answer) carries it too.
    response.headers["Location"] = f"/v1/stages/{json.loads(bytes(response.body))['key']}"
    return response


@router.get(
    "/{key}",
    summary="Get a sales stage and its skills",
    response_model=StageOut,
    responses=errors(401, 404, 422),
)
async def get_stage(
    key: Annotated[str, Path(pattern=KEY_PATTERN)], session: SessionDep, principal: PrincipalDep
) -> StageOut:
    return StageOut.model_validate(await service.get_stage(session, principal, key))


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
