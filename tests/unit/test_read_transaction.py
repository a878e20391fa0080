"""end_read_transaction ends a read before slow I/O and can never commit a write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import String, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.db import end_read_transaction, make_sessionmaker


class _Base(DeclarativeBase):
    pass


class Item(_Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    async with engine.begin() as conn:
        await conn.run_sync(_Base.metadata.create_all)
        await conn.execute(text("INSERT INTO items (id, name) VALUES (1, 'before')"))
    yield engine
    await engine.dispose()


async def _stored_name(engine: AsyncEngine) -> str:
    async with make_sessionmaker(engine)() as other:
        return (await other.scalars(select(Item.name).where(Item.id == 1))).one()


async def test_flushed_but_uncommitted_write_is_refused_not_committed(
    engine: AsyncEngine,
) -> None:
    async with make_sessionmaker(engine)() as session:
        item = await session.get(Item, 1)
        assert item is not None
        item.name = "written"
        await session.flush()  # nothing pending any more, but the transaction wrote
        assert not session.dirty
        with pytest.raises(RuntimeError, match="after a write"):
            await end_read_transaction(session)
        await session.rollback()
    assert await _stored_name(engine) == "before"


async def test_executed_update_is_refused(engine: AsyncEngine) -> None:
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Item).where(Item.id == 1).values(name="written"))
        with pytest.raises(RuntimeError, match="after a write"):
            await end_read_transaction(session)
        await session.rollback()
    assert await _stored_name(engine) == "before"


async def test_unflushed_change_is_refused(engine: AsyncEngine) -> None:
    async with make_sessionmaker(engine)() as session:
        session.add(Item(id=2, name="new"))
        with pytest.raises(RuntimeError, match="unflushed"):
            await end_read_transaction(session)


async def test_a_read_ends_and_loaded_objects_stay_usable(engine: AsyncEngine) -> None:
    async with make_sessionmaker(engine)() as session:
        item = await session.get(Item, 1)
        assert item is not None
        assert engine.sync_engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        await end_read_transaction(session)
        # The transaction ended: its connection is back in the pool during the slow I/O.
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        # Still loaded (no lazy load, which async would refuse) and still tracked.
        assert item.name == "before"
        assert item in session
        item.name = "after"
        await session.commit()
    assert await _stored_name(engine) == "after"


async def test_a_committed_write_does_not_block_a_later_read(engine: AsyncEngine) -> None:
    async with make_sessionmaker(engine)() as session:
        item = await session.get(Item, 1)
        assert item is not None
        item.name = "committed"
        await session.commit()
        await session.get(Item, 1)
        await end_read_transaction(session)  # the write is no longer this transaction's
    assert await _stored_name(engine) == "committed"
