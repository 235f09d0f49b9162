"""What changed between two versions of a vendor's OpenAPI, and which changes break a client.

A change breaks a client that worked against the old version when:

- an operation (path and method), a documented response status or a media type is gone;
- a request needs something the old client does not send or sends otherwise: a new required
  field or parameter (query, header, path, cookie), a narrower type, enum, bound or pattern, a
  null no longer accepted, another parameter serialization, a variant of a ``oneOf`` gone,
  new credentials (docs/contracts-diff.md has every rule);
- a response holds something the old client does not expect or lacks what it reads: a field
  or header removed (or renamed: removed plus added) or no longer required, a wider type,
  enum or bound, a value that may now be null, a new ``oneOf`` variant;
- a callback (or 3.1 webhook) the provider calls changes the other way round: there the
  provider writes and the client reads.

Schemas are compared through ``$ref``, ``allOf``, ``oneOf``/``anyOf`` and recursion
(schema_compare); additions a tolerant reader ignores are listed as non-breaking. OLD and NEW
may be files or http(s) URLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.contracts import security_compare
from harness.contracts.schema_compare import Change, SchemaDiff, plain_name
from harness.contracts.schema_resolve import Resolver, parameter_schema

__all__ = ["METHODS", "Change", "SpecError", "diff", "load", "plain_name", "resolver"]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
FETCH_TIMEOUT = 10.0  # seconds for a spec given as a URL
DEFAULT_STYLE = {"query": "form", "cookie": "form", "path": "simple", "header": "simple"}


class SpecError(Exception):
    """A file that is not an OpenAPI document we can read: one line for the user."""


# -- reading a document -----------------------------------------------------------------------


def load(source: str | Path) -> dict[str, Any]:
    """An OpenAPI document from a file or an http(s) URL (YAML or JSON)."""
    text, name = _text(source)
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{name}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(spec, dict) or "paths" not in spec:
        raise SpecError(f"{name}: not an OpenAPI document (no paths)")
    return spec


def _text(source: str | Path) -> tuple[str, str]:
    name = str(source)
    if isinstance(source, Path) and re.match(r"https?:/[^/]", name, re.I):
        name = name.replace(":/", "://", 1)  # a URL that went through Path lost a slash
    if re.match(r"https?://", name, re.I):
        return _fetch(name), name
    try:
        return Path(source).read_text(), name
    except OSError as exc:
        raise SpecError(f"cannot read {name}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{name}: not a text file") from None


def _fetch(url: str) -> str:
    """The document at ``url``; any failure is one line naming the URL."""
    import httpx

    try:
        response = httpx.get(url, timeout=FETCH_TIMEOUT, follow_redirects=True)
    except httpx.TimeoutException:
        raise SpecError(f"cannot fetch {url}: no answer in {FETCH_TIMEOUT:g} s") from None
    except (httpx.HTTPError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise SpecError(f"cannot fetch {url}: {reason}") from None
    if response.status_code >= 400:
        raise SpecError(f"cannot fetch {url}: HTTP {response.status_code}")
    return response.text


# -- comparing two ------------------------------------------------------------------------------


@dataclass
class _Pair:
    """The two documents and their references."""

    old_spec: dict[str, Any]
    new_spec: dict[str, Any]

    def __post_init__(self) -> None:
        self.old, self.new = Resolver(self.old_spec), Resolver(self.new_spec)

    def schema(
        self, op: str, where: str, old: Any, new: Any, field: str, request: bool
    ) -> list[Change]:
        return SchemaDiff(self.old, self.new, op, where, request=request).run(old, new, field)


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    pair = _Pair(old, new)
    old_ops, new_ops = _operations(pair.old, old), _operations(pair.new, new)
    moved = _renamed_paths(old_ops, new_ops)
    changes: list[Change] = []
    for op in sorted(old_ops.keys() - new_ops.keys() - moved.keys()):
        changes.append(Change(op, "operation", "removed", True))
    for op in sorted(new_ops.keys() - old_ops.keys() - set(moved.values())):
        changes.append(Change(op, "operation", "added", False))
    for op in sorted(old_ops.keys() & new_ops.keys()):
        changes += _operation(pair, op, old_ops[op], new_ops[op])
    for was, op in sorted(moved.items()):
        changes += _moved(pair, was, old_ops[was], op, new_ops[op])
    changes += _webhooks(pair)
    unique = list(dict.fromkeys(changes))  # a schema reached twice reports once
    return sorted(unique, key=lambda c: (not c.breaking, c.operation, c.where))


def _operations(resolve: Resolver, spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for path, item in (spec.get("paths") or {}).items():
        for method, operation in _path_item(resolve, item).items():
            found[f"{method.upper()} {path}"] = operation
    return found


def _path_item(resolve: Resolver, item: Any) -> dict[str, dict[str, Any]]:
    """Each method's operation, with the path item's parameters merged into its own (OpenAPI
    lets an operation override a path-level parameter of the same name and location)."""
    item = resolve(item)
    if not isinstance(item, dict):
        return {}
    shared = item.get("parameters") or []
    found = {}
    for method in METHODS:
        operation = resolve(item.get(method))
        if isinstance(operation, dict):
            own = operation.get("parameters") or []
            merged = _parameters(resolve, shared) | _parameters(resolve, own)
            found[method] = {**operation, "parameters": merged}
    return found


def _parameters(resolve: Resolver, listed: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Parameters by (location, name); header names compare case-insensitively."""
    found = {}
    for raw in listed if isinstance(listed, list) else []:
        param = resolve(raw)
        if isinstance(param, dict) and "name" in param and "in" in param:
            name = str(param["name"])
            found[(str(param["in"]), name.lower() if param["in"] == "header" else name)] = param
    return found


def _renamed_paths(old: dict[str, Any], new: dict[str, Any]) -> dict[str, str]:
    """``GET /labels/{id}`` and ``GET /labels/{label_id}`` are one operation: a client
    fills the same URL whatever the parameter is called."""

    def shape(op: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", op)

    gone = {shape(op): op for op in old.keys() - new.keys()}
    came: dict[str, list[str]] = {}
    for op in new.keys() - old.keys():
        came.setdefault(shape(op), []).append(op)
    return {gone[s]: ops[0] for s, ops in came.items() if s in gone and len(ops) == 1}


def _moved(
    pair: _Pair, was: str, old: dict[str, Any], op: str, new: dict[str, Any]
) -> list[Change]:
    """A path whose parameters were renamed: compared as one operation, old names mapped."""
    names = dict(zip(_path_names(was), _path_names(op), strict=True))
    params = {
        ("path", names.get(name, name)) if where == "path" else (where, name): param
        for (where, name), param in old["parameters"].items()
    }
    shown = ", ".join(f"{{{a}}} -> {{{b}}}" for a, b in names.items() if a != b)
    renamed = Change(op, "path", f"path parameters renamed: {shown}", False)
    return [renamed, *_operation(pair, op, {**old, "parameters": params}, new)]


def _path_names(op: str) -> list[str]:
    return re.findall(r"\{([^}]*)\}", op)


def _operation(
    pair: _Pair, op: str, old: dict[str, Any], new: dict[str, Any], sends: bool = True
) -> list[Change]:
    """One operation in both versions. ``sends`` is False for a callback or webhook: there
    the provider sends the request and the client answers it."""
    changes = _parameter_changes(pair, op, old["parameters"], new["parameters"], sends)
    changes += _request_body(pair, op, old, new, sends)
    changes += _responses(pair, op, old, new, sends)
    if sends:
        changes += security_compare.compare(op, pair.old_spec, old, pair.new_spec, new)
        changes += _callbacks(pair, op, old, new)
    return changes


# -- parameters and headers ---------------------------------------------------------------------


def _parameter_changes(
    pair: _Pair,
    op: str,
    old: dict[tuple[str, str], dict[str, Any]],
    new: dict[tuple[str, str], dict[str, Any]],
    sends: bool,
) -> list[Change]:
    """A new required parameter breaks a client that sends the old set; one gone is ignored
    by the provider. When the client reads them (a callback's), the other way round."""
    changes = []
    for key in sorted(new.keys() - old.keys()):
        where, required = f"{key[0]} parameter: {key[1]}", bool(new[key].get("required"))
        message = "required parameter added" if required else "optional parameter added"
        changes.append(Change(op, where, message, sends and required))
    for key in sorted(old.keys() - new.keys()):
        changes.append(Change(op, f"{key[0]} parameter: {key[1]}", "parameter removed", not sends))
    for key in sorted(old.keys() & new.keys()):
        changes += _parameter(pair, op, key, old[key], new[key], sends)
    return changes


def _parameter(
    pair: _Pair,
    op: str,
    key: tuple[str, str],
    old: dict[str, Any],
    new: dict[str, Any],
    sends: bool,
) -> list[Change]:
    where, at = f"{key[0]} parameter", f"{key[0]} parameter: {key[1]}"
    changes = []
    was, now = bool(old.get("required")), bool(new.get("required"))
    if now and not was:
        changes.append(Change(op, at, "parameter now required", sends))
    elif was and not now:
        changes.append(Change(op, at, "parameter no longer required", not sends))
    if (style := _serialization(key[0], old)) != (then := _serialization(key[0], new)):
        message = f"serialization changed from {style} to {then}"
        changes.append(Change(op, at, message, True))
    old_schema, new_schema = parameter_schema(pair.old, old), parameter_schema(pair.new, new)
    return changes + pair.schema(op, where, old_schema, new_schema, key[1], sends)


def _serialization(where: str, param: dict[str, Any]) -> str:
    style = str(param.get("style") or DEFAULT_STYLE.get(where, "simple"))
    explode = param.get("explode", style == "form")
    return f"{style}{', exploded' if explode else ''}"


def _headers(pair: _Pair, op: str, where: str, old: Any, new: Any, reads: bool) -> list[Change]:
    """A response's headers: what the client reads, like the fields of its body."""

    def named(resolve: Resolver, headers: Any) -> dict[tuple[str, str], dict[str, Any]]:
        headers = resolve(headers)
        found = {}
        for name, header in (headers if isinstance(headers, dict) else {}).items():
            header = resolve(header)
            if isinstance(header, dict) and str(name).lower() != "content-type":
                found[(f"{where} header", str(name).lower())] = {**header, "name": name}
        return found

    old_h, new_h = named(pair.old, old), named(pair.new, new)
    changes = []
    for key in sorted(new_h.keys() - old_h.keys()):
        changes.append(Change(op, f"{key[0]}: {key[1]}", "header added", False))
    for key in sorted(old_h.keys() - new_h.keys()):
        changes.append(Change(op, f"{key[0]}: {key[1]}", "header removed", reads))
    for key in sorted(old_h.keys() & new_h.keys()):
        o, n = old_h[key], new_h[key]
        if o.get("required") and not n.get("required"):
            changes.append(Change(op, f"{key[0]}: {key[1]}", "header no longer required", reads))
        old_schema, new_schema = parameter_schema(pair.old, o), parameter_schema(pair.new, n)
        changes += pair.schema(op, key[0], old_schema, new_schema, key[1], not reads)
    return changes


# -- bodies ---------------------------------------------------------------------------------------


def _request_body(
    pair: _Pair, op: str, old: dict[str, Any], new: dict[str, Any], sends: bool
) -> list[Change]:
    was, now = pair.old(old.get("requestBody")), pair.new(new.get("requestBody"))
    was = was if isinstance(was, dict) and was else None
    now = now if isinstance(now, dict) and now else None
    where = "request body"
    if was is None and now is None:
        return []
    if was is None and now is not None:
        required = bool(now.get("required"))
        message = "required request body added" if required else "optional request body added"
        return [Change(op, where, message, sends and required)]
    if now is None:
        return [Change(op, where, "request body removed", not sends)]
    changes = []
    if now.get("required") and not was.get("required"):
        changes.append(Change(op, where, "request body now required", sends))
    content = _content(pair, op, where, was.get("content"), now.get("content"), sends)
    return changes + content


def _responses(
    pair: _Pair, op: str, old: dict[str, Any], new: dict[str, Any], reads: bool
) -> list[Change]:
    old_responses = {str(k): v for k, v in (old.get("responses") or {}).items()}
    new_responses = {str(k): v for k, v in (new.get("responses") or {}).items()}
    changes = []
    for status in sorted(old_responses.keys() - new_responses.keys()):
        changes.append(Change(op, f"response {status}", "status removed", True))
    for status in sorted(new_responses.keys() - old_responses.keys()):
        changes.append(Change(op, f"response {status}", "status added", False))
    for status in sorted(old_responses.keys() & new_responses.keys()):
        was, now = pair.old(old_responses[status]), pair.new(new_responses[status])
        was, now = (was if isinstance(was, dict) else {}), (now if isinstance(now, dict) else {})
        where = f"response {status}"
        changes += _headers(pair, op, where, was.get("headers"), now.get("headers"), reads)
        changes += _content(pair, op, where, was.get("content"), now.get("content"), not reads)
    return changes


def _content(pair: _Pair, op: str, where: str, old: Any, new: Any, request: bool) -> list[Change]:
    """Media types of a body, and the schema of each kept one. The first JSON one is the
    body (``request body: ...``); others are named (``request body (text/csv): ...``)."""
    was, now = _media(pair.old, old), _media(pair.new, new)
    changes = []
    for media in sorted(was.keys() - now.keys()):
        gone = "no longer accepted" if request else "no longer offered"
        changes.append(Change(op, where, f"media type {media} {gone}", True))
    for media in sorted(now.keys() - was.keys()):
        changes.append(Change(op, where, f"media type {media} added", False))
    common = [m for m in was if m in now]
    main = next((m for m in common if "json" in m), None)
    for media in common:
        old_entry, new_entry = was[media], now[media]
        if "schema" not in old_entry or "schema" not in new_entry:
            continue
        at = where if media == main else f"{where} ({media})"
        changes += pair.schema(op, at, old_entry["schema"], new_entry["schema"], "", request)
    return changes


def _media(resolve: Resolver, content: Any) -> dict[str, dict[str, Any]]:
    """Media types without their parameters (``application/json; charset=utf-8``)."""
    content = resolve(content)
    found = {}
    for media, entry in (content if isinstance(content, dict) else {}).items():
        entry = resolve(entry)
        found[str(media).split(";")[0].strip().lower()] = entry if isinstance(entry, dict) else {}
    return found


# -- the other direction: callbacks and webhooks ------------------------------------------------


def _callbacks(pair: _Pair, op: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Requests the provider sends back to the client: compared with the roles swapped."""
    was, now = _callback_ops(pair.old, old), _callback_ops(pair.new, new)
    changes = []
    for key in sorted(was.keys() - now.keys()):
        changes.append(Change(op, f"callback {key}", "removed: the provider no longer calls", True))
    for key in sorted(now.keys() - was.keys()):
        changes.append(Change(op, f"callback {key}", "added", False))
    for key in sorted(was.keys() & now.keys()):
        found = _operation(pair, op, was[key], now[key], sends=False)
        changes += [_prefixed(c, f"callback {key}: ") for c in found]
    return changes


def _callback_ops(resolve: Resolver, operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    callbacks = resolve(operation.get("callbacks"))
    found = {}
    for name, callback in (callbacks if isinstance(callbacks, dict) else {}).items():
        callback = resolve(callback)
        for expression, item in (callback if isinstance(callback, dict) else {}).items():
            for method, op in _path_item(resolve, item).items():
                found[f"{name} {method.upper()} {expression}"] = op
    return found


def _webhooks(pair: _Pair) -> list[Change]:
    """OpenAPI 3.1's ``webhooks``: operations the provider calls, like callbacks."""

    def ops(resolve: Resolver, spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
        hooks = spec.get("webhooks") if isinstance(spec.get("webhooks"), dict) else {}
        return {
            f"{method.upper()} (webhook {name})": op
            for name, item in hooks.items()
            for method, op in _path_item(resolve, item).items()
        }

    was, now = ops(pair.old, pair.old_spec), ops(pair.new, pair.new_spec)
    changes = [Change(op, "webhook", "removed", True) for op in sorted(was.keys() - now.keys())]
    changes += [Change(op, "webhook", "added", False) for op in sorted(now.keys() - was.keys())]
    for op in sorted(was.keys() & now.keys()):
        changes += _operation(pair, op, was[op], now[op], sends=False)
    return changes


def _prefixed(change: Change, prefix: str) -> Change:
    return Change(change.operation, prefix + change.where, change.message, change.breaking)


# -- for modules that read one spec rather than compare two (pact_check) ------------------------


def resolver(spec: dict[str, Any]) -> Callable[[Any], Any]:
    """Follows the local ``$ref``s of ``spec``; one that leads nowhere reads as ``{}``."""
    return Resolver(spec)
