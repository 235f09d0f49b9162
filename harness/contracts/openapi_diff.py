"""What changed between two versions of a vendor's OpenAPI, and which changes break a client.

A change breaks a client that worked against the old version when:

- an operation (path and method) or a documented response status is gone;
- a request needs something the old client does not send: a new required field or
  parameter (query, header, path, cookie), a changed type, an enum value the old client may
  send that is no longer accepted, a null no longer accepted;
- a response lacks something the old client may read: a field removed (or renamed: removed
  plus added), a required field now optional, a changed type, a value that may now be null,
  or an enum value the old client has never seen (or no enum at all any more).

Additions a tolerant reader ignores (new operations, statuses, optional request fields,
response fields) are listed as non-breaking. Only local ``$ref``s (``#/...``) are followed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class SpecError(Exception):
    """A file that is not an OpenAPI document we can read: one line for the user."""


@dataclass(frozen=True, order=True)
class Change:
    operation: str  # "POST /labels"
    where: str  # "request body: ship_to.postal_code", "response 201: status", ...
    message: str
    breaking: bool


def load(path: Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(spec, dict) or "paths" not in spec:
        raise SpecError(f"{path}: not an OpenAPI document (no paths)")
    return spec


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    changes: list[Change] = []
    old_ops, new_ops = _operations(old), _operations(new)
    for op in sorted(old_ops.keys() - new_ops.keys()):
        changes.append(Change(op, "operation", "removed", True))
    for op in sorted(new_ops.keys() - old_ops.keys()):
        changes.append(Change(op, "operation", "added", False))
    for op in sorted(old_ops.keys() & new_ops.keys()):
        changes += _operation(op, _Resolver(old), old_ops[op], _Resolver(new), new_ops[op])
    return sorted(changes, key=lambda c: (not c.breaking, c.operation, c.where))


def _operations(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each operation, with the path item's parameters merged into its own (OpenAPI lets an
    operation override a path-level parameter of the same name and location)."""
    found = {}
    resolve = _Resolver(spec)
    for path, item in (spec.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters") or []
        for method in METHODS:
            if isinstance(item.get(method), dict):
                operation = item[method]
                merged = _parameters(resolve, shared) | _parameters(
                    resolve, operation.get("parameters") or []
                )
                found[f"{method.upper()} {path}"] = {**operation, "parameters": merged}
    return found


def _parameters(resolve: _Resolver, listed: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Parameters by (location, name); header names compare case-insensitively."""
    found = {}
    for raw in listed:
        param = resolve(raw)
        if isinstance(param, dict) and "name" in param and "in" in param:
            name = str(param["name"])
            found[(param["in"], name.lower() if param["in"] == "header" else name)] = param
    return found


class _Resolver:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def __call__(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 32:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                return {}
            target: Any = self.spec
            for part in ref[2:].split("/"):
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
            node, seen = target, seen + 1
        return node


def _operation(
    op: str, old_r: _Resolver, old: dict[str, Any], new_r: _Resolver, new: dict[str, Any]
) -> list[Change]:
    changes = _parameter_changes(op, old_r, old["parameters"], new_r, new["parameters"])
    old_body, new_body = _request_schema(old_r, old), _request_schema(new_r, new)
    if old_body is not None or new_body is not None:
        changes += _schema(op, "request body", old_r, old_body or {}, new_r, new_body or {}, True)
    old_responses = old.get("responses") or {}
    new_responses = new.get("responses") or {}
    for status in sorted(set(old_responses) - set(new_responses), key=str):
        changes.append(Change(op, f"response {status}", "status removed", True))
    for status in sorted(set(new_responses) - set(old_responses), key=str):
        changes.append(Change(op, f"response {status}", "status added", False))
    for status in sorted(set(old_responses) & set(new_responses), key=str):
        old_schema = _response_schema(old_r, old_responses[status])
        new_schema = _response_schema(new_r, new_responses[status])
        if old_schema is not None and new_schema is not None:
            where = f"response {status}"
            changes += _schema(op, where, old_r, old_schema, new_r, new_schema, False)
    return changes


def _parameter_changes(
    op: str,
    old_r: _Resolver,
    old: dict[tuple[str, str], dict[str, Any]],
    new_r: _Resolver,
    new: dict[tuple[str, str], dict[str, Any]],
) -> list[Change]:
    """A new required parameter breaks an old client (it does not send it); one gone is
    ignored by the server; a kept one is compared like a request field."""
    changes = []
    for key in sorted(new.keys() - old.keys()):
        where, required = f"{key[0]} parameter: {key[1]}", bool(new[key].get("required"))
        message = "required parameter added" if required else "optional parameter added"
        changes.append(Change(op, where, message, required))
    for key in sorted(old.keys() - new.keys()):
        changes.append(Change(op, f"{key[0]} parameter: {key[1]}", "parameter removed", False))
    for key in sorted(old.keys() & new.keys()):
        where = f"{key[0]} parameter"
        if new[key].get("required") and not old[key].get("required"):
            changes.append(Change(op, f"{where}: {key[1]}", "parameter now required", True))
        old_schema, new_schema = old[key].get("schema") or {}, new[key].get("schema") or {}
        changes += _schema(op, where, old_r, old_schema, new_r, new_schema, True, key[1])
    return changes


def _request_schema(resolve: _Resolver, operation: dict[str, Any]) -> dict[str, Any] | None:
    body = resolve(operation.get("requestBody") or {})
    return _json_schema(resolve, body)


def _response_schema(resolve: _Resolver, response: Any) -> dict[str, Any] | None:
    return _json_schema(resolve, resolve(response))


def _json_schema(resolve: _Resolver, holder: Any) -> dict[str, Any] | None:
    content = holder.get("content") if isinstance(holder, dict) else None
    if not isinstance(content, dict):
        return None
    for media, entry in content.items():
        if "json" in media and isinstance(entry, dict) and "schema" in entry:
            return resolve(entry["schema"])
    return None


def _schema(
    op: str,
    where: str,
    old_r: _Resolver,
    old: dict[str, Any],
    new_r: _Resolver,
    new: dict[str, Any],
    request: bool,
    field: str = "",
) -> list[Change]:
    """Compare two schemas at ``field``; ``request`` says which side the client is on."""
    old, new = old_r(old), new_r(new)
    at = f"{where}: {field}" if field else where
    changes: list[Change] = []
    old_type, new_type = _type(old), _type(new)
    if old_type and new_type and old_type != new_type:
        return [Change(op, at, f"type changed from {old_type} to {new_type}", True)]
    changes += _enum(op, at, old, new, request)
    changes += _nullable(op, at, old, new, request)
    if old_type == "array" or "items" in old:
        changes += _schema(
            op,
            where,
            old_r,
            old.get("items") or {},
            new_r,
            new.get("items") or {},
            request,
            f"{field}[]",
        )
    old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
    old_required, new_required = set(old.get("required") or ()), set(new.get("required") or ())
    removed = sorted(old_props.keys() - new_props.keys())
    added = sorted(new_props.keys() - old_props.keys())
    rename = _renamed(removed, added, old_r, old_props, new_r, new_props)
    prefix = f"{field}." if field else ""
    for name in removed:
        hint = f" (renamed to {rename[name]}?)" if name in rename else ""
        # A client reads responses: a field gone breaks it; a request field gone is ignored.
        changes.append(Change(op, f"{where}: {prefix}{name}", f"field removed{hint}", not request))
    for name in added:
        required = name in new_required
        message = "required field added" if required else "optional field added"
        changes.append(Change(op, f"{where}: {prefix}{name}", message, request and required))
    for name in sorted(old_props.keys() & new_props.keys()):
        path = f"{prefix}{name}"
        if request and name in new_required and name not in old_required:
            changes.append(Change(op, f"{where}: {path}", "field now required", True))
        if not request and name in old_required and name not in new_required:
            changes.append(Change(op, f"{where}: {path}", "field no longer required", True))
        changes += _schema(op, where, old_r, old_props[name], new_r, new_props[name], request, path)
    return changes


def _type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = "|".join(sorted(k for k in kind if k != "null"))
    return kind if isinstance(kind, str) else None


def _nullable(
    op: str, at: str, old: dict[str, Any], new: dict[str, Any], request: bool
) -> list[Change]:
    """A response value that may now be null breaks a reader; a request that may no longer
    send null breaks a writer. The other directions are widenings."""
    was, now = _allows_null(old), _allows_null(new)
    if was == now:
        return []
    if now:
        return [Change(op, at, "may now be null", not request)]
    return [Change(op, at, "no longer accepts null" if request else "never null now", request)]


def _allows_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return schema.get("nullable") is True or (isinstance(kind, list) and "null" in kind)


def _enum(
    op: str, at: str, old: dict[str, Any], new: dict[str, Any], request: bool
) -> list[Change]:
    if "enum" in old and "enum" not in new:
        # the values are no longer listed: any value may be sent, or come back
        return [Change(op, at, "enum removed (any value now)", not request)]
    if "enum" not in old or "enum" not in new:
        return []
    old_values, new_values = set(map(str, old["enum"])), set(map(str, new["enum"]))
    changes = []
    if gone := sorted(old_values - new_values):
        # the client may send a value no longer accepted (request)
        changes.append(Change(op, at, f"enum values removed: {', '.join(gone)}", request))
    if extra := sorted(new_values - old_values):
        # the client may receive a value it has never seen (response)
        changes.append(Change(op, at, f"enum values added: {', '.join(extra)}", not request))
    return changes


def _renamed(
    removed: list[str],
    added: list[str],
    old_r: _Resolver,
    old_props: dict[str, Any],
    new_r: _Resolver,
    new_props: dict[str, Any],
) -> dict[str, str]:
    """Likely renames: the same name in another case style (``tracking_number`` and
    ``trackingNumber``), or the only field removed and the only one added, of one type."""
    pairs = {}
    for gone in removed:
        same = [came for came in added if _plain(came) == _plain(gone)]
        if len(same) == 1:
            pairs[gone] = same[0]
    if not pairs and len(removed) == 1 and len(added) == 1:
        (gone,), (came,) = removed, added
        if _type(old_r(old_props[gone])) == _type(new_r(new_props[came])):
            pairs[gone] = came
    return pairs


def _plain(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


# -- helpers for modules that read one spec rather than compare two (pact_check) ------------


def resolver(spec: dict[str, Any]) -> Callable[[Any], Any]:
    """Follows the local ``$ref``s of ``spec``; one that leads nowhere reads as ``{}``."""
    return _Resolver(spec)


def plain_name(name: str) -> str:
    """One name whatever its case style: ``tracking_number`` and ``trackingNumber`` agree."""
    return _plain(name)
