"""A task's payload schema as an operator reads it, and an example payload.

Read from the task's JSON schema (pydantic's `model_json_schema`): language
neutral, the terms an API client would use, and it covers nested models. The
example is built from defaults, or a placeholder of the right type within the
field's bounds, and then checked against the schema itself, so the screen can
say when an example still needs a value only a person can give (a pattern).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic.errors import PydanticUserError

from jobs import registry

#: Nested objects deeper than this are shown as "{}" in the example: a schema
#: may refer to itself (a tree of nodes).
MAX_DEPTH = 4


@dataclass(frozen=True)
class FieldDoc:
    name: str
    type: str
    required: bool
    #: The default as JSON text, or "" when the field has none.
    default: str
    description: str


@dataclass(frozen=True)
class TaskSchema:
    task: registry.TaskDef
    fields: list[FieldDoc]
    example: dict[str, Any]
    #: The schema accepts the example as it stands.
    example_valid: bool

    @property
    def example_json(self) -> str:
        return json.dumps(self.example, indent=2, ensure_ascii=False)


def task_schema(task: registry.TaskDef) -> TaskSchema:
    try:
        schema = task.schema.model_json_schema()
    except PydanticUserError:  # a type with no JSON form: describe nothing
        schema = {}
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    fields = [
        FieldDoc(
            name=name,
            type=describe(prop, defs),
            required=name in required,
            default=json.dumps(prop["default"]) if "default" in prop else "",
            description=str(prop.get("description", "")),
        )
        for name, prop in schema.get("properties", {}).items()
    ]
    example = _object_example(schema, defs, 0)
    try:
        task.validate(example)
    except (ValidationError, ValueError, TypeError):  # a validator of its own
        return TaskSchema(task, fields, example, example_valid=False)
    return TaskSchema(task, fields, example, example_valid=True)


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return {**defs.get(ref.rsplit("/", 1)[-1], {}), **_without(prop, "$ref")}
    return prop


def _without(prop: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in prop.items() if k != key}


def describe(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """ "integer, ≥ 0, ≤ 3600", "one of: kill, segfault", "list of string"."""
    prop = _resolve(prop, defs)
    if "enum" in prop:
        return "one of: " + ", ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return f"exactly {json.dumps(prop['const'])}"
    branches = prop.get("anyOf") or prop.get("oneOf")
    if branches:
        return " or ".join(describe(b, defs) for b in branches)
    kind = prop.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        kind = "list of " + describe(prop.get("items", {}), defs)
    elif kind == "object" and prop.get("title") and "properties" in prop:
        kind = f"object ({prop['title']})"
    return ", ".join([kind, *_bounds(prop)])


def _bounds(prop: dict[str, Any]) -> list[str]:
    marks = {
        "format": "{}",
        "minimum": "≥ {}",
        "exclusiveMinimum": "> {}",
        "maximum": "≤ {}",
        "exclusiveMaximum": "< {}",
        "multipleOf": "multiple of {}",
        "minLength": "at least {} characters",
        "maxLength": "at most {} characters",
        "pattern": "matching {}",
        "minItems": "{} or more items",
        "maxItems": "at most {} items",
    }
    return [
        mark.format(_number_text(prop[key]))
        for key, mark in marks.items()
        if key in prop
    ]


def _number_text(value: Any) -> str:
    """10000 as "10,000": bounds are read at a glance."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _object_example(
    prop: dict[str, Any], defs: dict[str, Any], depth: int
) -> dict[str, Any]:
    return {
        name: example_value(sub, defs, depth + 1)
        for name, sub in prop.get("properties", {}).items()
    }


def example_value(prop: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> Any:
    """The field's default, else a placeholder of its type within its bounds."""
    prop = _resolve(prop, defs)
    for key in ("default", "const"):
        if key in prop:
            return prop[key]
    if prop.get("enum"):
        return prop["enum"][0]
    branches = prop.get("anyOf") or prop.get("oneOf")
    if branches:
        usable = [b for b in branches if b.get("type") != "null"] or branches
        return example_value(usable[0], defs, depth)
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind in ("integer", "number"):
        return _number(prop, whole=kind == "integer")
    if kind == "string":
        return _string(prop)
    if kind == "array":
        item = example_value(prop.get("items", {}), defs, depth + 1)
        return [item] * int(prop.get("minItems", 0))
    if kind == "object" and depth < MAX_DEPTH:
        return _object_example(prop, defs, depth)
    return {"boolean": False, "object": {}}.get(str(kind))


def _number(prop: dict[str, Any], *, whole: bool) -> int | float:
    """0 if the bounds allow it, else the bound nearest to 0."""
    step = 1 if whole else 0.5
    value = 0.0
    if "minimum" in prop:
        value = max(value, prop["minimum"])
    if "exclusiveMinimum" in prop:
        value = max(value, prop["exclusiveMinimum"] + step)
    if "maximum" in prop:
        value = min(value, prop["maximum"])
    if "exclusiveMaximum" in prop:
        value = min(value, prop["exclusiveMaximum"] - step)
    return int(value) if whole else float(value)


def _string(prop: dict[str, Any]) -> str:
    placeholders = {
        "date-time": "2030-01-01T00:00:00Z",
        "date": "2030-01-01",
        "time": "00:00:00",
        "uuid": "00000000-0000-0000-0000-000000000000",
        "email": "someone@example.com",
        "uri": "https://example.com/",
    }
    text = placeholders.get(prop.get("format", ""), "")
    return text.ljust(int(prop.get("minLength", 0)), "x")
