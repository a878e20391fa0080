from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import Response

from app.deps import PrincipalDep, SessionDep
from app.openapi_meta import errors
from app.speech import to_vtt
from app.speech_analysis import service
from app.speech_analysis.schemas import SpeechOut, TranscriptOut

router = APIRouter(prefix="/v1/clips/{clip_id}", tags=["speech"])

# 404: the clip is not visible (not_found) or never analysed (speech_not_analyzed: a feedback
# clip, or one that failed processing); for the transcript also no_transcript (the analysis
# made none). 409 speech_pending: not analysed yet, ask again later.
_NEVER = "speech_not_analyzed"
_TRANSCRIPT_ERRORS = errors(
    401, 404, 409, 422, codes={404: [_NEVER, "no_transcript"], 409: ["speech_pending"]}
)


@router.get(
    "/speech",
    summary="A pitch's or exemplar's speech analysis: delivery metrics, flags, talk track",
    response_model=SpeechOut,
    responses=errors(401, 404, 422, codes={404: [_NEVER]}),
)
async def get_speech(clip_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> SpeechOut:
    return await service.get_speech(session, principal, clip_id)


@router.get(
    "/transcript",
    summary="The clip's transcript: timed segments with their words",
    response_model=TranscriptOut,
    responses=_TRANSCRIPT_ERRORS,
)
async def get_transcript(
    clip_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> TranscriptOut:
    transcript = await service.get_transcript(session, principal, clip_id)
    return TranscriptOut(
        clip_id=clip_id,
        engine=transcript.engine,
        confidence_class=transcript.confidence_class,
        language=transcript.language,
        segments=list(transcript.segments),
    )


@router.get(
    "/transcript.vtt",
    summary="The clip's transcript as WebVTT captions",
    response_class=Response,
    responses={200: {"content": {"text/vtt": {}}}, **_TRANSCRIPT_ERRORS},
)
async def get_transcript_vtt(
    clip_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> Response:
    transcript = await service.get_transcript(session, principal, clip_id)
    return Response(
        to_vtt(transcript),
        media_type="text/vtt",
        headers={"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"},
    )
