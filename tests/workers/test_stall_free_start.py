"""`viewable` waits until playback from the start will not stall: an encode slower than real
time is published only once it is far enough ahead (app.media.plan.stall_free_start)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import event

from tests.helpers.transcode import get_clip, transcode_settings, upload
from tests.helpers.waiting import eventually
from tests.media.conftest import Clips
from workers.runtime import Worker

SECONDS = 14  # segments end at 6, 12 and 14 s
# Read at 0.75x real time: the first segment is stored ~8 s in; a player starting then would
# need the last one at 8 s + 8 s, but it would come ~19 s in. The second segment (12 s, ~16 s
# in) leaves 2 s to encode with 6 s to play: that one is safe.
READRATE = 0.75


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return Clips(tmp_path_factory.mktemp("stall-free-clips"))


@pytest.fixture
def settings(make_settings: Any, request: pytest.FixtureRequest) -> Any:
    return transcode_settings(make_settings, "local", request, transcode_readrate=READRATE)


async def test_a_slow_encode_is_viewable_only_once_it_stays_ahead(
    app: Any, client: httpx.AsyncClient, make_org: Any, worker: Worker, media: Clips
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    media_dir = app.state.settings.media_dir
    # Segments of the lowest rendition stored when each status is written.
    stored_at: list[tuple[str, int]] = []

    def record(
        _conn: Any, _cursor: Any, _sql: str, _params: Any, context: Any, _many: bool
    ) -> None:
        compiled = context.compiled
        if compiled is None or not compiled.isupdate or compiled.statement.table.name != "clips":
            return
        for values in context.compiled_parameters:
            if "status" in values:
                status = str(getattr(values["status"], "value", values["status"]))
                stored_at.append((status, len(list(media_dir.glob("orgs/**/v0/seg_*.m4s")))))

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        clip_id = await upload(client, rep, media.small(SECONDS))
        clip = await eventually(
            lambda: get_clip(client, rep, clip_id),
            until=lambda clip: clip["status"] == "ready",
            timeout=120,
            what=f"clip {clip_id} to be ready",
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert clip["status"] == "ready"
    viewable = [count for status, count in stored_at if status == "viewable"]
    # Never after the first segment alone (it would stall); on a machine too loaded to keep
    # 0.75x, possibly not before the end at all.
    assert viewable == [] or viewable[0] >= 2, stored_at
    assert stored_at[-1][0] == "ready"
