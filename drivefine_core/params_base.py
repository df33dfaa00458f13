"""The base of every params.yaml section model: an unknown key is an error, never silently ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """One section (or sub-section) of params.yaml."""

    model_config = ConfigDict(extra="forbid")
