"""A large, deterministic peerpitch data set for benchmarks, loaded with PostgreSQL COPY.

One organization (default stages and skills) with a few users of every role, ``clips`` ready,
playable clips spread over the three default stages, and ``feedback`` feedback items: about
80 % thread roots (a fifth of them spanning a range, some resolved, some edited, a few with
a drawing) and 20 % replies in their roots' threads, tagged with skills of the clip's stage,
and "helpful" reactions on a fraction of them (``helpful_count`` kept in step). Clip 0, the
*hot clip*, carries exactly ``hot_items`` of the feedback items, and the *viewer* (a rep who
does not own it) marked some of them helpful, so ``reacted_by_me`` is exercised.

The same ``seed`` and ``now`` give the same rows (ids included). Rows go in through asyncpg's
``copy_records_to_table`` with foreign-key triggers off and the secondary indexes of the
bulk tables dropped and rebuilt afterwards; then ``VACUUM ANALYZE``. 1M feedback items take
about a minute on a small machine.

The database must be migrated (``upgrade_head``) and empty of benchmark data: use a scratch
database (``app.migrate.create_scratch_database``). Reused by bench/feedback.py and
bench/prep.py::

    from bench.dataset import add_exemplars, build_dataset
    data = await build_dataset(url, clips=10_000, feedback=1_000_000)
    await add_exemplars(url, data, count=500)  # exemplars, their views and scores
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.stages.defaults import DEFAULT_STAGES
from bench.harness import pg_connect

PASSWORD = "bench-password-0123"
HELPFUL = "helpful"
DEFAULT_ROLES: Mapping[str, int] = {"admin": 2, "coach": 4, "top_performer": 8, "rep": 24}
STAGE_SKILLS: dict[str, list[str]] = {
    str(s["key"]): [key for key, _name in s["skills"]]  # type: ignore[attr-defined]
    for s in DEFAULT_STAGES
}
STAGE_KEYS = ["prospecting", "contact_to_trial", "closing"]
COPY_BATCH = 50_000
_DAY_MS = 24 * 3600 * 1000

_BODIES = [
    "Ask why before you demo: you jumped to features before you knew their pain.",
    "Great open question here. Let the silence work for you a little longer.",
    "You talked over the prospect at this point; pause and let them finish.",
    "Nice recovery after the price objection. Tie it back to their ROI numbers.",
    "Confirm who else signs off before you propose next steps.",
    "This is the moment to quantify the cost of doing nothing.",
    "Slow down: the agenda was rushed and they never agreed to it.",
    "Good use of a customer story from their industry.",
    "You missed a buying signal: they asked about implementation time.",
    "Summarize what you heard before moving to the demo.",
    "Strong close: a clear next step with a date. Do this on every call.",
    "Try the six-touch cadence here instead of waiting a week.",
    "Their budget question deserved a straight answer, not a deflection.",
    "Ask about their current process in more depth before pitching.",
    "Keep the demo to the two workflows they care about.",
    "Agreed, and add a follow-up email that same afternoon.",
    "Thanks, I'll try that on my next discovery call.",
    "+1, this is exactly what the top reps do.",
]
_COLORS = ["#ff3b30", "#34c759", "#007aff", "#ffcc00"]


def media_manifest(org_id: uuid.UUID, clip_id: uuid.UUID) -> dict[str, Any]:
    """A minimal published-renditions manifest: enough for a clip to count as playable."""
    return {
        "version": "1-1",
        "prefix": f"orgs/{org_id}/clips/{clip_id}/media/1-1/",
        "master": "master.m3u8",
        "variants": [
            {"name": "v0", "width": 640, "height": 360, "bandwidth": 1_000_000,
             "codecs": "avc1.42c01e,mp4a.40.2", "playlist": "v0/index.m3u8"}
        ],
        "download": None, "poster": None, "storyboard": None, "storyboard_vtt": None,
    }  # fmt: skip


@dataclass(frozen=True)
class ClipInfo:
    id: uuid.UUID
    stage: str
    owner_id: uuid.UUID
    duration_ms: int
    visibility: str
    created_at: datetime
    feedback_count: int


@dataclass
class Dataset:
    org_id: uuid.UUID
    users: dict[str, list[uuid.UUID]]  # role → ids (the first admin made the org)
    clips: list[ClipInfo]
    hot_clip_id: uuid.UUID
    viewer_id: uuid.UUID  # a rep who may see the hot clip and reacted to some of its items
    now: datetime
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def email(self, user_id: uuid.UUID) -> str:
        return f"{user_id.hex}@bench.example.com"


def _uuid7(ms: int, rng: random.Random) -> uuid.UUID:
    """A version-7 UUID for a given millisecond, its random bits from ``rng``."""
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= rng.getrandbits(12) << 64
    value |= 0b10 << 62
    value |= rng.getrandbits(62)
    return uuid.UUID(int=value)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# --- COPY helpers (reusable) --------------------------------------------------------------------


async def table_columns(conn: Any, table: str) -> list[tuple[str, bool, bool]]:
    """(name, nullable, has_default) of ``table``'s columns, in table order."""
    rows = await conn.fetch(
        "SELECT column_name, is_nullable = 'YES' AS nullable,"
        " column_default IS NOT NULL AS has_default"
        " FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    if not rows:
        raise RuntimeError(f"table {table!r} not found: is the database migrated?")
    return [(r["column_name"], r["nullable"], r["has_default"]) for r in rows]


async def copy_rows(
    conn: Any, table: str, rows: Iterable[Mapping[str, Any]], batch: int = COPY_BATCH
) -> int:
    """COPY dict rows into ``table``. Only the columns the table has are sent, so a column
    added by a later migration needs no change here unless it is NOT NULL without a default
    (then this fails with the column's name). Returns the number of rows."""
    info = await table_columns(conn, table)
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return 0
    present = {name for name, _, _ in info}
    missing = [
        n for n, nullable, default in info if n not in first and not nullable and not default
    ]
    if missing:
        raise RuntimeError(f"bench/dataset.py does not fill {table}.{', '.join(missing)}")
    columns = [name for name, _, _ in info if name in first]
    unknown = set(first) - present
    if unknown:
        # A column the generator fills but the schema no longer has: drop it, loudly.
        print(f"  note: {table} has no column {', '.join(sorted(unknown))}; not loaded")
    total = 0
    chunk: list[tuple[Any, ...]] = [tuple(first[c] for c in columns)]
    for row in it:
        chunk.append(tuple(row[c] for c in columns))
        if len(chunk) >= batch:
            await conn.copy_records_to_table(table, records=chunk, columns=columns)
            total += len(chunk)
            chunk = []
    if chunk:
        await conn.copy_records_to_table(table, records=chunk, columns=columns)
        total += len(chunk)
    return total


async def _drop_secondary_indexes(conn: Any, table: str) -> list[str]:
    """Drop ``table``'s indexes that back no constraint; return their definitions."""
    rows = await conn.fetch(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i"
        " WHERE i.schemaname = current_schema() AND i.tablename = $1"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
        "   WHERE c.conrelid = $1::regclass AND c.conname = i.indexname)",
        table,
    )
    for r in rows:
        await conn.execute(f'DROP INDEX "{r["indexname"]}"')
    return [r["indexdef"] for r in rows]


# --- generation -----------------------------------------------------------------------------------


def _users(
    rng: random.Random, org_id: uuid.UUID, admin_id: uuid.UUID, roles: Mapping[str, int],
    password_hash: str, now_ms: int,
) -> tuple[dict[str, list[uuid.UUID]], list[dict[str, Any]]]:  # fmt: skip
    users: dict[str, list[uuid.UUID]] = {role: [] for role in roles}
    users.setdefault("admin", [])
    users["admin"].append(admin_id)
    rows = []
    for role, count in roles.items():
        for i in range(count - (1 if role == "admin" else 0)):
            created = _at(now_ms - 200 * _DAY_MS + rng.randrange(_DAY_MS))
            uid = _uuid7(_ms(created), rng)
            users[role].append(uid)
            rows.append({
                "id": uid, "org_id": org_id, "email": f"{uid.hex}@bench.example.com",
                "name": f"{role.replace('_', ' ').title()} {i + 1}", "role": role,
                "password_hash": password_hash, "is_active": True,
                "created_at": created, "updated_at": created,
            })  # fmt: skip
    return users, rows


def _clip_row(
    org_id: uuid.UUID, clip: ClipInfo, skills: list[str], title: str, kind: str
) -> dict[str, Any]:
    return {
        "id": clip.id, "org_id": org_id, "created_at": clip.created_at,
        "updated_at": clip.created_at, "owner_id": clip.owner_id, "title": title,
        "description": "", "kind": kind, "stage": clip.stage, "skills": json.dumps(skills),
        "visibility": clip.visibility, "status": "ready", "progress": 1.0,
        "error_code": None, "error_message": None, "duration_ms": clip.duration_ms,
        "width": 1280, "height": 720, "is_exemplar": False, "fps": 30.0, "has_audio": True,
        "video_codec": "h264", "audio_codec": "aac", "bitrate": 2_500_000,
        "media": json.dumps(media_manifest(org_id, clip.id)), "filename": "pitch.mp4",
        "content_type": "video/mp4", "size_bytes": clip.duration_ms * 300,
        "sha256": None, "source_key": f"orgs/{org_id}/clips/{clip.id}/source",
        "deleted_at": None,
    }  # fmt: skip


@dataclass
class _Gen:
    rng: random.Random
    org_id: uuid.UUID
    now_ms: int
    users: dict[str, list[uuid.UUID]]
    viewer_id: uuid.UUID
    hot_clip_id: uuid.UUID
    reply_fraction: float
    resolved_fraction: float
    helpful_fraction: float
    reactions: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        u = self.users
        # Feedback mostly comes from top performers and coaches; reps comment too.
        self.authors = (
            u.get("top_performer", []) * 4 + u.get("coach", []) * 3 + u.get("rep", [])
            + u.get("admin", [])
        )  # fmt: skip
        self.resolvers = u.get("coach", []) + u.get("admin", [])
        self.everyone = [x for ids in u.values() for x in ids]

    def _react(self, item: uuid.UUID, author: uuid.UUID, created_ms: int, hot: bool) -> int:
        rng = self.rng
        reactors: list[uuid.UUID] = []
        if rng.random() < self.helpful_fraction:
            n = rng.choice((1, 1, 1, 2, 2, 3, 5))
            reactors = [x for x in rng.sample(self.everyone, n + 1) if x != author][:n]
        mine = hot and self.viewer_id != author and self.viewer_id not in reactors
        if mine and rng.random() < 0.1:
            reactors.append(self.viewer_id)
        for user_id in reactors:
            at = min(self.now_ms, created_ms + rng.randrange(1, 5 * _DAY_MS))
            self.reactions.append({
                "id": _uuid7(at, rng), "org_id": self.org_id, "feedback_id": item,
                "user_id": user_id, "kind": HELPFUL, "created_at": _at(at),
            })  # fmt: skip
        return len(reactors)

    def clip_feedback(self, clip: ClipInfo) -> Iterator[dict[str, Any]]:
        rng, now_ms, k = self.rng, self.now_ms, clip.feedback_count
        if k == 0:
            return
        hot = clip.id == self.hot_clip_id
        skills = STAGE_SKILLS[clip.stage]
        n_replies = min(k - 1, round(k * self.reply_fraction))
        clip_ms = _ms(clip.created_at)
        window = max(1, min(now_ms - clip_ms, 30 * _DAY_MS))
        roots: list[dict[str, Any]] = []
        for _ in range(k - n_replies):
            created_ms = clip_ms + rng.randrange(window)
            ts = rng.randrange(clip.duration_ms)
            end = None
            if rng.random() < 0.2:
                end = min(clip.duration_ms, ts + rng.randrange(2_000, 30_000))
                if end <= ts:
                    end = None
            author = rng.choice(self.authors)
            row = self._row(clip, author, None, created_ms, ts, end, skills, hot)
            if rng.random() < self.resolved_fraction:
                at = min(now_ms, created_ms + rng.randrange(60_000, 14 * _DAY_MS))
                row["resolved_at"] = _at(at)
                row["resolved_by_id"] = rng.choice([clip.owner_id, author, *self.resolvers])
                row["updated_at"] = max(row["updated_at"], row["resolved_at"])
            roots.append(row)
            yield row
        for _ in range(n_replies):
            root = rng.choice(roots)
            root_ms = _ms(root["created_at"])
            created_ms = min(now_ms, root_ms + rng.randrange(60_000, 3 * _DAY_MS))
            # Half the replies come from the clip's owner ("thanks, will try that").
            author = clip.owner_id if rng.random() < 0.5 else rng.choice(self.authors)
            yield self._row(
                clip, author, root["id"], created_ms, root["timestamp_ms"], root["end_ms"],
                skills, hot,
            )  # fmt: skip

    def _row(
        self, clip: ClipInfo, author: uuid.UUID, parent: uuid.UUID | None, created_ms: int,
        ts: int, end: int | None, skills: list[str], hot: bool,
    ) -> dict[str, Any]:  # fmt: skip
        rng = self.rng
        item = _uuid7(created_ms, rng)
        created = _at(created_ms)
        edited = _at(min(self.now_ms, created_ms + 600_000)) if rng.random() < 0.05 else None
        annotation = None
        if parent is None and rng.random() < 0.05:
            x, y = round(rng.random() * 0.8, 3), round(rng.random() * 0.8, 3)
            annotation = json.dumps({"shapes": [{
                "type": rng.choice(("arrow", "rect", "ellipse")),
                "points": [[x, y], [x + 0.15, y + 0.1]], "color": rng.choice(_COLORS),
            }]})  # fmt: skip
        return {
            "id": item, "org_id": self.org_id, "clip_id": clip.id, "author_id": author,
            "parent_id": parent, "body": rng.choice(_BODIES), "timestamp_ms": ts,
            "end_ms": end, "skill": rng.choice(skills) if rng.random() < 0.7 else None,
            "annotation": annotation, "response_clip_id": None, "mentions": "[]",
            "resolved_at": None, "resolved_by_id": None, "edited_at": edited,
            "deleted_at": None, "created_at": created, "updated_at": edited or created,
            "helpful_count": self._react(item, author, created_ms, hot),
        }  # fmt: skip


async def build_dataset(
    database_url: str,
    *,
    clips: int = 10_000,
    feedback: int = 1_000_000,
    hot_items: int = 2_000,
    roles: Mapping[str, int] = DEFAULT_ROLES,
    reply_fraction: float = 0.2,
    resolved_fraction: float = 0.3,
    helpful_fraction: float = 0.15,
    private_fraction: float = 0.1,
    seed: int = 6,
    now: datetime | None = None,
    log: Callable[[str], None] | None = print,
) -> Dataset:
    """Create the organization, users, clips, feedback and reactions; return what a
    benchmark needs to address them. ``now`` (default: today 00:00 UTC) anchors every
    timestamp: clips were created over the 180 days before it."""
    from app.auth.security import hash_password
    from app.db import make_engine, make_sessionmaker
    from app.orgs.service import create_org

    if clips < 1 or feedback < 0 or hot_items > feedback:
        raise ValueError("need clips ≥ 1 and 0 ≤ hot_items ≤ feedback")
    say = log or (lambda _msg: None)
    started = time.perf_counter()
    rng = random.Random(seed)
    now = now or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    now_ms = _ms(now)
    seconds: dict[str, float] = {}

    # The organization, its first admin and default stages through the product's service.
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            created = await create_org(
                session, name="Bench Co", admin_email=f"admin-{seed}@bench.example.com",
                admin_password=PASSWORD, admin_name="Bench admin",
            )  # fmt: skip
            org_id, admin_id = created.org.id, created.admin.id
    finally:
        await engine.dispose()
    password_hash = await hash_password(PASSWORD)
    users, user_rows = _users(rng, org_id, admin_id, roles, password_hash, now_ms)
    owners = users.get("rep", []) + users.get("top_performer", [])
    if len(users.get("rep", [])) < 2:
        raise ValueError("need at least two reps (the hot clip's owner and the viewer)")
    hot_owner, viewer = users["rep"][0], users["rep"][1]

    # Clips: feedback counts spread at random over all but the hot clip.
    counts = [0] * clips
    counts[0] = hot_items
    rest = feedback - hot_items
    if clips > 1:
        for _ in range(rest):
            counts[rng.randrange(1, clips)] += 1
    else:
        counts[0] += rest
    infos: list[ClipInfo] = []
    clip_rows: list[dict[str, Any]] = []
    for i in range(clips):
        stage = STAGE_KEYS[i % 3] if i else "contact_to_trial"
        created_at = _at(now_ms - rng.randrange(1, 180 * _DAY_MS))
        if i == 0:
            created_at = _at(now_ms - 100 * _DAY_MS)
        info = ClipInfo(
            id=_uuid7(_ms(created_at), rng),
            stage=stage,
            owner_id=hot_owner if i == 0 else rng.choice(owners),
            duration_ms=1_800_000 if i == 0 else rng.randrange(60_000, 1_800_000),
            visibility="private" if i and rng.random() < private_fraction else "org",
            created_at=created_at,
            feedback_count=counts[i],
        )
        infos.append(info)
        skills = rng.sample(STAGE_SKILLS[stage], rng.randint(1, 2))
        kind = "exemplar" if rng.random() < 0.05 else "pitch"
        clip_rows.append(_clip_row(org_id, info, skills, f"{stage} call #{i + 1}", kind))

    gen = _Gen(
        rng=rng, org_id=org_id, now_ms=now_ms, users=users, viewer_id=viewer,
        hot_clip_id=infos[0].id, reply_fraction=reply_fraction,
        resolved_fraction=resolved_fraction, helpful_fraction=helpful_fraction,
    )  # fmt: skip

    conn = await pg_connect(database_url)
    try:
        # Superuser only: skip the per-row foreign-key triggers (the rows are consistent).
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '256MB'")
        tables = ("clips", "feedback", "feedback_reactions")
        dropped = {t: await _drop_secondary_indexes(conn, t) for t in tables}
        t0 = time.perf_counter()
        n_users = await copy_rows(conn, "users", user_rows)
        n_clips = await copy_rows(conn, "clips", clip_rows)
        seconds["clips"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        done = 0

        def all_feedback() -> Iterator[dict[str, Any]]:
            nonlocal done
            for info in infos:
                for row in gen.clip_feedback(info):
                    done += 1
                    if done % 200_000 == 0:
                        say(f"  feedback: {done:,} rows ({time.perf_counter() - t0:.0f} s)")
                    yield row

        n_feedback = await copy_rows(conn, "feedback", all_feedback())
        n_reactions = await copy_rows(conn, "feedback_reactions", gen.reactions)
        seconds["feedback"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        for t in tables:
            for definition in dropped[t]:
                await conn.execute(definition)
        seconds["indexes"] = time.perf_counter() - t0
        # What app.feedback.service keeps up to date as threads open and close.
        await conn.execute(
            "UPDATE clips SET open_feedback_count = o.n FROM ("
            " SELECT clip_id, count(*) AS n FROM feedback WHERE parent_id IS NULL"
            " AND resolved_at IS NULL AND deleted_at IS NULL GROUP BY clip_id) o"
            " WHERE o.clip_id = clips.id"
        )
        await conn.execute("SET session_replication_role = DEFAULT")
        t0 = time.perf_counter()
        # VACUUM too: sets the visibility map and hint bits, as on a long-running server.
        await conn.execute("VACUUM ANALYZE users, clips, feedback, feedback_reactions")
        seconds["vacuum_analyze"] = time.perf_counter() - t0
    finally:
        await conn.close()
    seconds["total"] = time.perf_counter() - started
    counts = {"users": n_users + 1, "clips": n_clips, "feedback": n_feedback}
    counts["reactions"] = n_reactions
    data = Dataset(
        org_id=org_id,
        users=users,
        clips=infos,
        hot_clip_id=infos[0].id,
        viewer_id=viewer,
        now=now,
        counts=counts,
        seconds=seconds,
    )
    say(
        f"  data set: {n_clips:,} clips, {n_feedback:,} feedback items, {n_reactions:,} "
        f"reactions, {n_users + 1} users in {seconds['total']:.0f} s (COPY feedback "
        f"{seconds['feedback']:.0f} s, indexes {seconds['indexes']:.0f} s, VACUUM ANALYZE "
        f"{seconds['vacuum_analyze']:.0f} s)"
    )
    return data


def by_stage(data: Dataset) -> dict[str, list[ClipInfo]]:
    out: dict[str, list[ClipInfo]] = {k: [] for k in STAGE_KEYS}
    for c in data.clips:
        out[c.stage].append(c)
    return out


_NOTES = [
    "Textbook close: summarizes value, names the decision maker, books the next step.",
    "Watch how she handles the price objection at the halfway mark.",
    "Great discovery: three open questions before any demo.",
    "The ROI story here is the one to copy.",
    "Calm, specific and short. This is the bar.",
    "",
]


async def add_exemplars(
    database_url: str,
    data: Dataset,
    *,
    count: int = 500,
    endorsed_fraction: float = 0.6,
    max_viewers: int = 30,
    seed: int = 7,
    log: Callable[[str], None] | None = print,
) -> list[uuid.UUID]:
    """Mark ``count`` clips (spread evenly over the stages, mostly top performers' clips,
    never the hot clip) as exemplars: ``exemplars`` rows (a coach marked ``endorsed_fraction``
    of them, their owner the rest), ``clips.is_exemplar``, and up to ``max_viewers`` distinct
    viewers each in ``clip_views``; then the product's ``refresh_scores`` computes their
    statistics and scores from that data. Returns the exemplars' clip ids."""
    from app.db import make_engine, make_sessionmaker
    from app.exemplars.service import refresh_scores

    say = log or (lambda _msg: None)
    started = time.perf_counter()
    rng = random.Random(seed)
    now_ms = _ms(data.now)
    top = set(data.users.get("top_performer", []))
    coaches = data.users.get("coach", []) + data.users.get("admin", [])
    everyone = [x for ids in data.users.values() for x in ids]
    chosen: list[ClipInfo] = []
    for i, (_stage, infos) in enumerate(by_stage(data).items()):
        want = count // len(STAGE_KEYS) + (i < count % len(STAGE_KEYS))
        pool = [c for c in infos if c.id != data.hot_clip_id]
        preferred = [c for c in pool if c.owner_id in top]
        picked = rng.sample(preferred, min(want, len(preferred)))
        rest = [c for c in pool if c.owner_id not in top]
        chosen += picked + rng.sample(rest, min(want - len(picked), len(rest)))
    exemplar_rows: list[dict[str, Any]] = []
    view_rows: list[dict[str, Any]] = []
    for clip in chosen:
        clip_ms = _ms(clip.created_at)
        marked_ms = min(now_ms, clip_ms + rng.randrange(_DAY_MS, 20 * _DAY_MS))
        endorsed = bool(coaches) and rng.random() < endorsed_fraction
        exemplar_rows.append({
            "id": _uuid7(marked_ms, rng), "org_id": data.org_id, "clip_id": clip.id,
            "note": rng.choice(_NOTES),
            "marked_by_id": rng.choice(coaches) if endorsed else clip.owner_id,
            "marked_at": _at(marked_ms), "endorsed": endorsed, "helpful_count": 0,
            "viewer_count": 0, "completion_rate": 0.0, "score": 0.0, "stats_at": None,
        })  # fmt: skip
        viewers = [u for u in everyone if u != clip.owner_id]
        for user_id in rng.sample(viewers, rng.randint(0, min(max_viewers, len(viewers)))):
            first = min(now_ms, marked_ms + rng.randrange(0, 30 * _DAY_MS))
            last = min(now_ms, first + rng.randrange(0, 7 * _DAY_MS))
            completed = rng.random() < 0.6
            watched = clip.duration_ms if completed else rng.randrange(clip.duration_ms)
            view_rows.append({
                "id": _uuid7(first, rng), "org_id": data.org_id, "clip_id": clip.id,
                "user_id": user_id, "position_ms": watched, "watched_ms": watched,
                "completed": completed, "created_at": _at(first), "last_watched_at": _at(last),
            })  # fmt: skip
    ids = [c.id for c in chosen]
    conn = await pg_connect(database_url)
    try:
        n_exemplars = await copy_rows(conn, "exemplars", exemplar_rows)
        n_views = await copy_rows(conn, "clip_views", view_rows)
        await conn.execute("UPDATE clips SET is_exemplar = true WHERE id = ANY($1::uuid[])", ids)
    finally:
        await conn.close()
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            await refresh_scores(session, now=data.now)
    finally:
        await engine.dispose()
    conn = await pg_connect(database_url)
    try:
        await conn.execute("VACUUM ANALYZE clips, exemplars, clip_views")
    finally:
        await conn.close()
    data.counts.update(exemplars=n_exemplars, clip_views=n_views)
    say(
        f"  exemplars: {n_exemplars} marked, {n_views:,} views, scores by refresh_scores "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return ids
