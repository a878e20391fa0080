from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
MAX_PHRASES = 50
MAX_PHRASE_CHARS = 100
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w")


def _phrase(value: str) -> str:
    # Matching ignores case, punctuation and spacing (app.speech.text.normalise): a phrase
    # must hold a word to match anything.
    if not _WORD.search(value):
        raise ValueError("a phrase needs at least one word")
    return _SPACES.sub(" ", value)


Phrase = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PHRASE_CHARS),
    AfterValidator(_phrase),
]
Phrases = Annotated[list[Phrase], Field(max_length=MAX_PHRASES)]

_PHRASES_HELP = (
    "The skill's talk track (at most 50 phrases of at most 100 characters); the speech "
    "analysis of a clip at this stage reports which were said, and where. Omitted: kept as "
    "they are (empty for a new skill)."
)


class SkillIn(BaseModel):
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    phrases_to_use: Phrases | None = Field(default=None, description=_PHRASES_HELP)
    phrases_to_avoid: Phrases | None = Field(default=None, description=_PHRASES_HELP)

    @model_validator(mode="after")
    def _distinct_phrases(self) -> SkillIn:
        seen: dict[str, str] = {}
        for kind, phrases in (("use", self.phrases_to_use), ("avoid", self.phrases_to_avoid)):
            for phrase in phrases or ():
                folded = phrase.casefold()
                if folded in seen:
                    where = "twice" if seen[folded] == kind else "both to use and to avoid"
                    raise ValueError(f"phrase {phrase!r} is listed {where}")
                seen[folded] = kind
        return self


class SkillOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    name: str
    phrases_to_use: list[str] = Field(description="Phrases a pitch at this stage should say.")
    phrases_to_avoid: list[str] = Field(description="Phrases a pitch should not say.")


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
