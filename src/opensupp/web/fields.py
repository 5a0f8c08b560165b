"""Request-body field types and the translation of pydantic errors into ours.

API.md's fine print, in types: numbers may come as decimal strings and booleans as
"true"/"false"/"1"/"0" (nothing else is coerced); strings count code points, refuse
control characters (tab and newline only in multi-line fields) and, when required, blanks.
Models are strict and forbid unknown fields.
"""

from __future__ import annotations

import functools
import itertools
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, TypeVar

import typing_extensions
from annotated_types import GroupedMetadata
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from opensupp import values
from opensupp.errors import MAX_UNKNOWN, FieldError, ValidationFailed, more_unknown
from opensupp.langs import LANGS

T = TypeVar("T")

#: Bodies up to this size are validated by pydantic straight from the JSON (``validate_json``);
#: a larger one is parsed first, so that a body of many unknown keys never makes pydantic
#: build an error per key twice (no partner API body is this large but a batch's).
MAX_DIRECT = 64 * 1024


class Body(BaseModel):
    """Base of every request body: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def check_raw(cls, data: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
        """Rules pydantic cannot state with exact paths (a catalogue, cross-field rules),
        checked on the parsed JSON so their errors join pydantic's in one answer.
        Returns normalized values for the body's fields, and the problems found."""
        return {}, []

    @classmethod
    def validation_cost(cls, data: dict[str, Any]) -> float:
        """About how many microseconds validating ``data`` may take at most, for a body whose
        ``check_raw`` can take long (a trigger's regular expressions): the edge validates a
        body over its budget off the event loop (``opensupp.lane``). 0: always cheap."""
        return 0.0


def _coerced(convert: Any) -> Any:
    """A BeforeValidator that applies ``convert`` to strings and leaves the rest to pydantic."""

    def before(value: Any) -> Any:
        if type(value) is str:
            converted = convert(value)
            return value if converted is None else converted
        return value

    return BeforeValidator(before)


#: ``Int``'s coercion, for an integer with bounds: ``Annotated[int, Field(ge=0), AS_INT]`` (pydantic
#: documents a bound as ``minimum``/``maximum`` only when it comes before the validator)
AS_INT = _coerced(values.as_int)
Int = Annotated[int, AS_INT]
Bool = Annotated[bool, _coerced(values.as_bool)]
Number = Annotated[float, _coerced(values.as_number)]


def _check_text(multiline: bool, required: bool) -> Callable[[str], str]:
    def check(value: str) -> str:
        problem = values.text_problem(value, multiline=multiline, required=required)
        if problem is not None:
            raise PydanticCustomError("text", problem)
        return value

    return check


def text_pattern(multiline: bool, required: bool) -> str:
    """The same rules as ``_check_text``, as a JSON Schema pattern for the docs and fuzzers."""
    allowed = r"[^\x00-\x08\x0b-\x1f\x7f]" if multiline else r"[^\x00-\x1f\x7f]"
    if not required:
        return f"^{allowed}*$"
    return f"^{allowed}*{values.NON_BLANK.pattern}{allowed}*$"


class TextRules(GroupedMetadata):
    """The rules of a text field, as ``Annotated`` metadata (``Annotated[str, TextRules(255)]``,
    a type mypy reads): at most ``max_length`` code points (at least ``min_length`` when required). An
    optional one is checked by pydantic's own (Rust) regex, no Python call per string; a
    required one also must not be blank, which ``text_problem`` says better than a pattern could."""

    __slots__ = ("max_length", "min_length", "multiline", "required")

    def __init__(self, max_length: int, *, multiline: bool = False, required: bool = True, min_length: int = 1) -> None:
        self.max_length = max_length
        self.min_length = min_length
        self.multiline = multiline
        self.required = required

    def __iter__(self) -> Iterator[Any]:
        pattern = text_pattern(self.multiline, self.required)
        if not self.required:
            yield StringConstraints(min_length=0, max_length=self.max_length, pattern=pattern)
            return
        yield StringConstraints(min_length=self.min_length, max_length=self.max_length)
        yield AfterValidator(_check_text(self.multiline, self.required))
        yield Field(json_schema_extra={"pattern": pattern})


if TYPE_CHECKING:
    #: A field that may be left out and is then None (every field of an update; a create's
    #: whose default is decided later, like a user's ``lang``). To mypy ``T | None``; to
    #: pydantic ``T`` itself, so an explicit ``null`` is refused like any other wrong value.
    Omittable: TypeAlias = T | None
else:

    class Omittable:
        def __class_getitem__(cls, item: Any) -> Any:
            return item


#: an optional text's pattern -> the problem it finds (``_message``)
_TEXT_PATTERNS = {
    text_pattern(multiline, False): problem
    for multiline in (False, True)
    if (problem := values.text_problem("\x00", multiline=multiline, required=False)) is not None
}


def _check_lang(value: str) -> str:
    problem = values.lang_problem(value)  # the rule and the words provision's check uses too
    if problem is not None:
        raise PydanticCustomError("lang", "{problem}", {"problem": problem})
    return value


Lang = Annotated[str, AfterValidator(_check_lang), WithJsonSchema({"type": "string", "enum": list(LANGS)})]


# The rule and its words live in opensupp_client.values, shared with provision's check.
# (API.md: "syntax is checked, deliverability is not": special-use domains pass.)
def _check_email(value: str) -> str:
    problem = values.email_problem(value)
    if problem is not None:
        raise PydanticCustomError("email", "{problem}", {"problem": problem})
    return value


#: An e-mail address: a user's login, an offline email.
Email = Annotated[
    str, TextRules(254), AfterValidator(_check_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254, "pattern": text_pattern(False, True)}),
]


# ----------------------------------------------------------------------------- errors


def field_path(loc: Iterable[Any]) -> str:
    """('config', 1, 'times', 0, 'to') -> 'config[1].times[0].to'"""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _fields(kind: Any) -> dict[str, Any] | None:
    """The fields of a body or of an object in it (a model or a TypedDict): name -> annotation."""
    if isinstance(kind, type):
        return _class_fields(kind)
    return None


@functools.lru_cache(maxsize=256)  # one entry per model class; typing.get_type_hints costs more than a request
def _class_fields(kind: type) -> dict[str, Any] | None:
    if issubclass(kind, BaseModel):
        return {name: field.annotation for name, field in kind.model_fields.items()}
    if typing_extensions.is_typeddict(kind):
        return typing.get_type_hints(kind, include_extras=True)
    return None


def _object_in(annotation: Any) -> dict[str, Any] | None:
    """The fields of the object ``annotation`` holds (itself, or in a list, an Optional...)."""
    kind = _object_class(annotation)
    return _class_fields(kind) if kind is not None else None


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current = _fields(model)
    for part in loc:
        if current is None:
            return []
        if isinstance(part, str):
            annotation = current.get(part)
            current = _object_in(annotation) if annotation is not None else None
    return list(current) if current else []


_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "finite_number": "must be a finite number",
}


def _message(model: type[BaseModel], err: ErrorDetails) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_fields(model, tuple(err["loc"][:-1]))
        return "is not a known field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "string_too_short":
        return values.too_short(ctx["min_length"])
    if kind == "string_too_long":
        return values.too_long(ctx["max_length"])
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} items"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"must be {sign} {bound}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _TEXT_PATTERNS:
        return _TEXT_PATTERNS[ctx["pattern"]]
    if kind == "literal_error":
        return f"must be one of: {ctx.get('expected', '')}".replace("'", "")
    return _MESSAGES.get(kind) or err["msg"]


def _pruned(kind: type, data: Any, at: str, notes: list[FieldError]) -> Any:
    """``data`` (parsed JSON, to be validated as the object type ``kind``) with each object's
    unknown keys beyond the first ``MAX_UNKNOWN`` left out, and one error in ``notes`` per
    object that had more, counting them. pydantic reports every unknown key (a body of 1 MiB
    holds 90,000), each turned into a dict, which for that many costs far more than the rest
    of the request; this costs next to nothing for a usual body, and copies only what it changes."""
    if isinstance(data, list):
        items = [_pruned(kind, item, f"{at}[{i}]", notes) for i, item in enumerate(data)]
        return data if all(a is b for a, b in zip(items, data, strict=True)) else items
    if type(data) is not dict:
        return data
    allowed, nested = _shape(kind)
    out = data
    if len(data) > MAX_UNKNOWN:
        known = data.keys() & allowed  # (a set operation: walks the few allowed names, not the keys)
        if len(data) - len(known) > MAX_UNKNOWN:
            # pydantic reports the known fields in their declared order, then the unknown keys
            # in the order sent: so this order of the keys kept gives the same errors
            first = itertools.islice((key for key in data if key not in allowed), MAX_UNKNOWN)
            out = {key: data[key] for key in itertools.chain(known, first)}
            notes.append(more_unknown(at, len(data) - len(known) - MAX_UNKNOWN))
    for name, inner in nested.items():
        value = out.get(name)
        if isinstance(value, (dict, list)):
            checked = _pruned(inner, value, f"{at}.{name}" if at else name, notes)
            if checked is not value:
                out = dict(out) if out is data else out
                out[name] = checked
    return out


@functools.lru_cache(maxsize=256)
def _shape(kind: type) -> tuple[frozenset[str], dict[str, type]]:
    """The field names of an object type, and the object type held by each field that holds
    one (itself, in a list, in an Optional...)."""
    fields = _class_fields(kind) or {}
    nested = {name: inner for name, annotation in fields.items() if (inner := _object_class(annotation)) is not None}
    return frozenset(fields), nested


def _object_class(annotation: Any) -> type | None:
    """The model or TypedDict ``annotation`` holds, if any (itself, or in a list, an Optional...)."""
    if isinstance(annotation, type) and typing.get_origin(annotation) is None and _class_fields(annotation) is not None:
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, (type, types.GenericAlias)) or typing.get_args(arg):
            found = _object_class(arg)
            if found is not None:
                return found
    return None


def validate_json(model: type[Body], raw: bytes) -> Any | None:
    """``raw`` validated by pydantic straight from the JSON, with no dict in between (cheaper
    than parsing then validating), or None when it is not a valid body: the caller
    then parses and validates it as usual (``parse_object``, ``validate``), so every error
    answered is the same either way. pydantic's JSON parser refuses what orjson refuses (bad
    UTF-8, lone surrogates, NaN, a BOM) and reads the rest to the same values. Only for
    bodies without ``check_raw`` rules: they need the parsed JSON."""
    if len(raw) > MAX_DIRECT:
        return None
    try:
        return model.__pydantic_validator__.validate_json(raw)
    except PydanticValidationError:
        return None


def validate(model: type[Body], data: dict[str, Any]) -> Any:
    """Validate a parsed JSON object against ``model``; every problem in one error (each
    object's unknown keys past the first ``MAX_UNKNOWN`` counted in one, see ``_pruned``)."""
    notes: list[FieldError] = []
    body: Body | None = None
    errors: list[FieldError] = []
    try:
        body = model.model_validate(_pruned(model, data, "", notes))
    except PydanticValidationError as exc:
        errors = [FieldError(field_path(e["loc"]), _message(model, e))
                  for e in exc.errors(include_url=False, include_input=False)]
    errors += notes
    normalized, problems = model.check_raw(data)
    if problems:
        seen = {e.field for e in errors}
        errors += [e for e in problems if e.field not in seen]
    if errors or body is None:  # (no body: pydantic's errors are among them)
        raise ValidationFailed(errors)
    return body.model_copy(update=normalized) if normalized else body
