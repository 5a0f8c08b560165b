"""Pieces every resource's api.py shares: read-only fields, response models' base."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from opensupp.errors import FieldError, ValidationFailed


def _id_as_string(value: Any) -> Any:
    return str(value) if type(value) is int else value


#: An id sent back in an update body, as the string we answered or as a number.
ReadOnlyId = Annotated[str, BeforeValidator(_id_as_string)]


def ReadOnly() -> Any:
    """An update body's read-only field: accepted back unchanged, refused if different."""
    return Field(None, description="Read-only: ignored when equal to the current value.",
                 json_schema_extra={"readOnly": True})


class Out(BaseModel):
    """Base of response models: documentation only, answers are built as dicts."""

    model_config = ConfigDict(extra="forbid")


def check_read_only(body: BaseModel, current: dict[str, Any], fields: tuple[str, ...]) -> None:
    """A read-only field may be sent back unchanged; changing it is a 400."""
    sent = body.model_fields_set
    errors = [
        FieldError(f, f"is read-only; it is {current[f]!r} and cannot be changed")
        for f in fields
        if f in sent and getattr(body, f) != current[f]
    ]
    if errors:
        raise ValidationFailed(errors)


def changes(body: BaseModel, fields: tuple[str, ...]) -> dict[str, Any]:
    """The writable fields the client actually sent (a partial update)."""
    sent = body.model_fields_set
    return {f: getattr(body, f) for f in fields if f in sent}
