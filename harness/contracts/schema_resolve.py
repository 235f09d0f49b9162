"""Reading one OpenAPI document's schemas as a client meets them: ``$ref``s followed, ``allOf``
merged into one schema, a ``oneOf``/``anyOf`` that only adds ``null`` read as ``nullable``.

Shared by ``contracts diff`` (two documents compared) and ``contracts check`` (pacts against one
document), so both see through composition the same way. Only local references (``#/...``) are
followed: one into another file reads as ``{}`` (nothing known). Recursive schemas are safe:
a reference met again while it is being merged is skipped, and callers walking a schema tree
stop where ``identity`` repeats on their path.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any
from urllib.parse import unquote

# Keywords merged by taking the tightest bound when several allOf parts set them.
LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
VARIANT_KEYS = ("oneOf", "anyOf")
MAX_REF_HOPS = 32


class Resolver:
    """One document's local references, followed."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def __call__(self, node: Any) -> Any:
        """The node a ``$ref`` chain ends on; a reference that leads nowhere reads as ``{}``."""
        hops = 0
        while isinstance(node, dict) and "$ref" in node and hops < MAX_REF_HOPS:
            node, hops = self._target(node["$ref"]), hops + 1
        return {} if isinstance(node, dict) and "$ref" in node else node

    def _target(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return {}
        target: Any = self.spec
        for raw in ref[1:].split("/")[1:]:
            part = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            elif isinstance(target, dict):
                target = target.get(part, {})
            else:
                return {}
        return target

    def identity(self, node: Any, depth: int = 0) -> Hashable:
        """The same key wherever the same schema is reached (through any ``$ref``): what a
        walk over a recursive schema remembers to stop at the second visit. A bare ``allOf``
        (as merging two parts' same-named property makes) is known by its parts."""
        target = self(node)
        parts = target.get("allOf") if isinstance(target, dict) else None
        if isinstance(parts, list) and len(target) == 1 and depth < MAX_REF_HOPS:
            if len(parts) == 1:
                return self.identity(parts[0], depth + 1)  # a wrapper is what it wraps
            return ("allOf", *(self.identity(p, depth + 1) for p in parts))
        return id(target)

    def view(self, node: Any) -> dict[str, Any]:
        """The schema at ``node`` as one object: references followed, ``allOf`` merged, a
        ``null`` alternative folded into ``nullable``. Sub-schemas stay as written."""
        schema = self(node)
        if not isinstance(schema, dict):
            return {}
        merged = self._merged(schema, {id(schema)})
        return _fold_null_variant(self, merged)

    def _merged(self, schema: dict[str, Any], stack: set[int]) -> dict[str, Any]:
        parts = schema.get("allOf")
        if not isinstance(parts, list):
            return schema
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        outer_nullable = "nullable" in merged
        nullables = []
        for raw in parts:
            part = self(raw)
            if not isinstance(part, dict) or id(part) in stack:
                continue  # a part that includes itself adds nothing new
            part = self._merged(part, stack | {id(part)})
            if part.get("type") is not None or "properties" in part:
                nullables.append(allows_null(part))
            _merge_into(merged, part)
        if not outer_nullable:
            merged.pop("nullable", None)
            if nullables and all(nullables):
                merged["nullable"] = True
        return merged


def _merge_into(merged: dict[str, Any], part: dict[str, Any]) -> None:
    """``allOf`` semantics, as far as a single schema can say them: every part's properties
    and required fields, the narrower type, the common enum values, the tightest bounds."""
    for key, value in part.items():
        if key == "properties" and isinstance(value, dict):
            props = dict(merged.get("properties") or {})
            for name, sub in value.items():
                props[name] = {"allOf": [props[name], sub]} if name in props else sub
            merged["properties"] = props
        elif key == "required" and isinstance(value, list):
            merged["required"] = list(dict.fromkeys([*(merged.get("required") or []), *value]))
        elif key == "type" and "type" in merged:
            merged["type"] = _narrower_type(merged["type"], value)
        elif key == "enum" and isinstance(merged.get("enum"), list) and isinstance(value, list):
            merged["enum"] = [v for v in merged["enum"] if v in value]
        elif key in LOWER_BOUNDS and _number(merged.get(key)) and _number(value):
            merged[key] = max(merged[key], value)
        elif key in UPPER_BOUNDS and _number(merged.get(key)) and _number(value):
            merged[key] = min(merged[key], value)
        elif key in ("readOnly", "writeOnly"):
            merged[key] = bool(merged.get(key)) or bool(value)
        else:
            merged.setdefault(key, value)


def _narrower_type(first: Any, second: Any) -> Any:
    """Both types must hold: integer within number; a 3.1 list of types intersected."""
    one, two = type_set(first), type_set(second)
    if "integer" in one and "number" in two:
        two = two | {"integer"}
    if "integer" in two and "number" in one:
        one = one | {"integer"}
    common = one & two
    if not common:
        return first  # contradictory parts: keep the first; the schema accepts nothing anyway
    if len(common) == 1:
        return next(iter(common))
    return sorted(common)


def _fold_null_variant(resolve: Resolver, schema: dict[str, Any]) -> dict[str, Any]:
    """``oneOf: [{type: "null"}, X]`` (the usual way to make a ``$ref`` nullable) reads as X
    with ``nullable: true``; a null alternative among several is dropped the same way."""
    for key in VARIANT_KEYS:
        options = schema.get(key)
        if not isinstance(options, list):
            continue
        rest = [o for o in options if not _is_null(resolve(o))]
        if len(rest) == len(options) or not rest:
            continue
        folded = {k: v for k, v in schema.items() if k != key}
        folded["nullable"] = True
        if len(rest) > 1:
            folded[key] = rest
            return folded
        inner = resolve.view(rest[0])
        return {**inner, **{k: v for k, v in folded.items() if k not in inner or k == "nullable"}}
    return schema


def _is_null(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    return (
        schema.get("type") == "null"
        or schema.get("enum") == [None]
        or ("const" in schema and schema["const"] is None)
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- reading one schema -------------------------------------------------------------------------


def type_set(kind: Any) -> set[str]:
    """The types a ``type`` keyword names (3.0 string or 3.1 list), ``null`` included."""
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return set()


def types(schema: dict[str, Any]) -> set[str]:
    """The non-null types a schema allows; an object or array is inferred from its keywords.
    Empty means any type."""
    found = type_set(schema.get("type")) - {"null"}
    if not found and "properties" in schema:
        return {"object"}
    if not found and "items" in schema:
        return {"array"}
    return found


def allows_null(schema: dict[str, Any]) -> bool:
    """Null allowed by ``nullable: true`` (3.0), ``type: [..., "null"]`` (3.1) or an enum
    that lists it."""
    if schema.get("nullable") is True or "null" in type_set(schema.get("type")):
        return True
    return isinstance(schema.get("enum"), list) and None in schema["enum"]


def enum_values(schema: dict[str, Any]) -> list[Any] | None:
    """The allowed values (``enum``, or 3.1's ``const`` as one value), null left out."""
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return [v for v in values if v is not None] if isinstance(values, list) else None


def variants(schema: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """``("oneOf", [...])`` or ``("anyOf", [...])`` when the schema is a choice."""
    for key in VARIANT_KEYS:
        options = schema.get(key)
        if isinstance(options, list) and options:
            return key, options
    return None


def ref_name(node: Any) -> str | None:
    """The last segment of a ``$ref`` (``#/components/schemas/Card`` -> ``Card``)."""
    if isinstance(node, dict) and isinstance(node.get("$ref"), str):
        return unquote(node["$ref"].rsplit("/", 1)[-1]).replace("~1", "/").replace("~0", "~")
    return None


def parameter_schema(resolve: Resolver, param: dict[str, Any]) -> Any:
    """A parameter's (or header's) ``schema``, or the schema of its ``content``: OpenAPI
    allows one or the other."""
    if "schema" in param:
        return param["schema"]
    content = resolve(param.get("content"))
    if isinstance(content, dict):
        for entry in content.values():
            entry = resolve(entry)
            if isinstance(entry, dict) and "schema" in entry:
                return entry["schema"]
    return {}
