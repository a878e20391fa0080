from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class SkillIn(BaseModel):
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=200)


class SkillOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    name: str


class StageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    name: str
    description: str
    position: int
    skills: list[SkillOut]


def _unique_skill_keys(skills: list[SkillIn] | None) -> list[SkillIn] | None:
    if skills is not None:
        keys = [s.key for s in skills]
        if len(keys) != len(set(keys)):
            raise ValueError("skill keys must be unique within a stage")
    return skills


class StageCreate(BaseModel):
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    position: int | None = Field(default=None, ge=0, le=10_000)
    skills: list[SkillIn] = Field(default_factory=list, max_length=50)

    _check_skills = field_validator("skills")(_unique_skill_keys)


class StageUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    position: int | None = Field(default=None, ge=0, le=10_000)
    skills: list[SkillIn] | None = Field(
        default=None, max_length=50, description="Replaces the stage's skills, in this order."
    )

    _check_skills = field_validator("skills")(_unique_skill_keys)
