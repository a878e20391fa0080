from __future__ import annotations

import uuid

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, TenantMixin, TimestampMixin


class Stage(TenantMixin, TimestampMixin, Base):
    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("org_id", "key"),)

    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(default=0)

    skills: Mapped[list[Skill]] = relationship(
        back_populates="stage",
        lazy="raise",
        cascade="all, delete-orphan",
        order_by="Skill.position",
    )


class Skill(TenantMixin, Base):
    __tablename__ = "skills"
    __table_args__ = (UniqueConstraint("stage_id", "key"),)

    stage_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(default=0)
    # The skill's talk track: phrases a pitch at this stage should say, and should not (the
    # speech analysis reports which were said, and where).
    phrases_to_use: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    phrases_to_avoid: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )

    stage: Mapped[Stage] = relationship(back_populates="skills", lazy="raise")
