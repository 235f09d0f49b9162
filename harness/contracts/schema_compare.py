"""Comparing one schema in two versions of a document, from one side of the wire.

The rule under every verdict (oasdiff's too): a change that *narrows* what a request may hold
breaks a client that sends the old shape; a change that *widens* what a response may hold
breaks a client that reads the old shape. A change that is neither (a pattern replaced by
another) breaks either side. Tolerant-reader exceptions, kept from twinyard's first diff: a new
optional response field, or ``additionalProperties`` opened on a response, is not breaking.

Composition is seen through: ``$ref`` and ``allOf`` are merged into one schema first
(schema_resolve), ``oneOf``/``anyOf`` variants are paired old to new (by ``$ref`` name, title or
discriminator value, then by likeness) and compared pair by pair. Recursive schemas stop at the
second visit of the same pair.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from harness.contracts.schema_resolve import (
    LOWER_BOUNDS,
    UPPER_BOUNDS,
    Resolver,
    allows_null,
    enum_values,
    ref_name,
    types,
    variants,
)

MAX_DEPTH = 64  # nesting levels: a backstop for recursion no identity can see
WIDER_FORMATS = {("int32", "int64"), ("float", "double")}


@dataclass(frozen=True, order=True)
class Change:
    operation: str  # "POST /labels"
    where: str  # "request body: ship_to.postal_code", "response 201: status", ...
    message: str
    breaking: bool


class SchemaDiff:
    """The changes between two versions of one schema at ``where`` of operation ``op``;
    ``request`` says the client writes it (a request) rather than reads it (a response)."""

    def __init__(self, old: Resolver, new: Resolver, op: str, where: str, *, request: bool) -> None:
        self.old, self.new = old, new
        self.op, self.where, self.request = op, where, request
        self.changes: list[Change] = []
        self._path: list[Hashable] = []

    def run(self, old_node: Any, new_node: Any, field: str = "") -> list[Change]:
        self.compare(old_node, new_node, field)
        return self.changes

    # -- walking --------------------------------------------------------------------------

    def compare(self, old_node: Any, new_node: Any, field: str) -> None:
        key = (self.old.identity(old_node), self.new.identity(new_node))
        self._views(self.old.view(old_node), self.new.view(new_node), field, key)

    def _views(self, old: dict[str, Any], new: dict[str, Any], field: str, key: Hashable) -> None:
        if key in self._path or len(self._path) >= MAX_DEPTH:
            return  # this pair is already being compared further up: a recursive schema
        self._path.append(key)
        try:
            if variants(old) or variants(new):
                self._choice(old, new, field, key)
            else:
                self._plain(old, new, field)
        finally:
            self._path.pop()

    def _plain(self, old: dict[str, Any], new: dict[str, Any], field: str) -> None:
        if self._type(old, new, field):
            return  # another type altogether: nothing below it compares
        self._nullable(old, new, field)
        self._enum(old, new, field)
        self._constraints(old, new, field)
        if self.request:
            self._default(old, new, field)
        if "items" in old or "items" in new:
            self.compare(old.get("items") or {}, new.get("items") or {}, f"{field}[]")
        self._properties(old, new, field)
        self._additional(old, new, field)

    def _add(self, field: str, message: str, breaking: bool) -> None:
        at = f"{self.where}: {field}" if field else self.where
        self.changes.append(Change(self.op, at, message, breaking))

    def _breaks(self, narrows: bool) -> bool:
        """Narrowing a request, or widening a response, breaks the client."""
        return narrows if self.request else not narrows

    # -- one schema's own keywords ----------------------------------------------------------

    def _type(self, old: dict[str, Any], new: dict[str, Any], field: str) -> bool:
        """Reports a type change; True when the types share nothing (stop comparing)."""
        was, now = types(old), types(new)
        if was == now:
            return False
        if not was or not now:
            message = f"type now {_show_types(now)} (was any)" if now else "type no longer set"
            self._add(field, message, self._breaks(narrows=bool(now)))
            return False
        message = f"type changed from {_show_types(was)} to {_show_types(now)}"
        wider, narrower = _covers(now, was), _covers(was, now)
        self._add(field, message, True if wider == narrower else self._breaks(narrower))
        return not (_expand(was) & _expand(now))

    def _nullable(self, old: dict[str, Any], new: dict[str, Any], field: str) -> None:
        """A response value that may now be null breaks a reader; a request that may no
        longer send null breaks a writer. The other directions are widenings."""
        was, now = allows_null(old), allows_null(new)
        if was == now:
            return
        if now:
            self._add(field, "may now be null", not self.request)
        else:
            message = "no longer accepts null" if self.request else "never null now"
            self._add(field, message, self.request)

    def _enum(self, old: dict[str, Any], new: dict[str, Any], field: str) -> None:
        was, now = enum_values(old), enum_values(new)
        if was is None and now is None:
            return
        if now is None:
            # the values are no longer listed: any value may be sent, or come back
            self._add(field, "enum removed (any value now)", not self.request)
            return
        if was is None:
            self._add(field, f"enum added: only {_values(now)} now", self.request)
            return
        old_values, new_values = set(map(str, was)), set(map(str, now))
        if gone := old_values - new_values:
            # the client may send a value no longer accepted (request)
            self._add(field, f"enum values removed: {', '.join(sorted(gone))}", self.request)
        if extra := new_values - old_values:
            # the client may receive a value it has never seen (response)
            self._add(field, f"enum values added: {', '.join(sorted(extra))}", not self.request)

    def _constraints(self, old: dict[str, Any], new: dict[str, Any], field: str) -> None:
        for key in (*LOWER_BOUNDS, *UPPER_BOUNDS):
            found = _bound(key, old.get(key), new.get(key))
            if found is not None:
                message, narrows = found
                self._add(field, message, self._breaks(narrows))
        for key in ("pattern", "format", "multipleOf"):
            found = _restriction(key, old.get(key), new.get(key))
            if found is not None:
                message, effect = found
                self._add(field, message, True if effect is None else self._breaks(effect))
        if bool(old.get("uniqueItems")) != bool(new.get("uniqueItems")):
            now = bool(new.get("uniqueItems"))
            message = "items must now be unique" if now else "items no longer need be unique"
            self._add(field, message, self._breaks(narrows=now))

    def _default(self, old: dict[str, Any], new: dict[str, Any], field: str) -> None:
        """A client that leaves a field out relied on its default."""
        if "default" not in old and "default" not in new:
            return
        if "default" not in new:
            self._add(field, f"default removed (was {_show(old['default'])})", False)
        elif "default" not in old:
            self._add(field, f"default added: {_show(new['default'])}", False)
        elif old["default"] != new["default"]:
            message = f"default changed from {_show(old['default'])} to {_show(new['default'])}"
            self._add(field, message, True)

    # -- objects ----------------------------------------------------------------------------

    def _properties(self, old: dict[str, Any], new: dict[str, Any], field: str) -> None:
        old_props, new_props = self._visible(self.old, old), self._visible(self.new, new)
        old_required = set(old.get("required") or ()) & old_props.keys()
        new_required = set(new.get("required") or ()) & new_props.keys()
        removed = sorted(old_props.keys() - new_props.keys())
        added = sorted(new_props.keys() - old_props.keys())
        rename = _renamed(removed, added, self.old, old_props, self.new, new_props)
        prefix = f"{field}." if field else ""
        for name in removed:
            self._removed(new, prefix + name, name, rename.get(name))
        for name in added:
            self._added(old, prefix + name, name, name in new_required)
        for name in sorted(old_props.keys() & new_props.keys()):
            path = prefix + name
            if self.request and name in new_required and name not in old_required:
                self._add(path, "field now required", True)
            if not self.request and name in old_required and name not in new_required:
                self._add(path, "field no longer required", True)
            self.compare(old_props[name], new_props[name], path)

    def _visible(self, resolve: Resolver, schema: dict[str, Any]) -> dict[str, Any]:
        """The properties on this side of the wire: a read-only one is never sent, a
        write-only one never comes back."""
        hidden = "readOnly" if self.request else "writeOnly"
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        return {n: p for n, p in props.items() if not resolve.view(p).get(hidden)}

    def _removed(self, new: dict[str, Any], path: str, name: str, renamed: str | None) -> None:
        if name in (new.get("properties") or {}):
            if self.request:
                self._add(path, "now read-only: the provider ignores it in requests", False)
            else:
                self._add(path, "now write-only: no longer in responses", True)
            return
        hint = f" (renamed to {renamed}?)" if renamed else ""
        if not self.request:
            # A client reads responses: a field gone breaks it.
            self._add(path, f"field removed{hint}", True)
        elif new.get("additionalProperties") is False:
            self._add(path, f"field removed{hint}: now refused (additionalProperties: false)", True)
        else:
            self._add(path, f"field removed{hint}", False)  # the provider ignores it

    def _added(self, old: dict[str, Any], path: str, name: str, required: bool) -> None:
        if name in (old.get("properties") or {}):
            side = "read-only" if self.request else "write-only"
            if self.request and required:
                self._add(path, f"field now required (no longer {side})", True)
            else:
                self._add(path, f"no longer {side}", False)
            return
        message = "required field added" if required else "optional field added"
        self._add(path, message, self.request and required)

    def _additional(self, old: dict[str, Any], new: dict[str, Any], field: str) -> None:
        was, now = old.get("additionalProperties"), new.get("additionalProperties")
        if was == now:
            return
        if now is False or was is False:
            closed = now is False
            if self.request:
                message = "other fields now refused" if closed else "other fields now accepted"
                self._add(field, f"{message} (additionalProperties)", closed)
            else:
                message = "no other fields now" if closed else "other fields may now come"
                self._add(field, f"{message} (additionalProperties)", False)
        elif isinstance(was, dict) and isinstance(now, dict):
            self.compare(was, now, f"{field}.*" if field else "*")
        elif not old.get("properties") and not new.get("properties"):
            described = isinstance(now, dict)
            message = "map values now described" if described else "map values no longer described"
            self._add(field, message, self._breaks(narrows=described))

    # -- choices: oneOf / anyOf --------------------------------------------------------------

    def _choice(self, old: dict[str, Any], new: dict[str, Any], field: str, key: Any) -> None:
        was, now = variants(old), variants(new)
        if was and now:
            self._plain(_outer(old), _outer(new), field)
            if was[0] != now[0]:
                widens = now[0] == "anyOf"  # anyOf accepts a value matching several
                self._add(field, f"{was[0]} became {now[0]}", self._breaks(narrows=not widens))
            self._pair_variants(old, new, was[1], now[1], field, key, now[0])
            self._discriminator(old, new, field)
        elif now:
            self._plain_to_choice(old, new, now, field, key)
        elif was:
            self._choice_to_plain(old, new, was, field, key)

    def _pair_variants(
        self,
        old: dict[str, Any],
        new: dict[str, Any],
        old_options: list[Any],
        new_options: list[Any],
        field: str,
        key: Any,
        kind: str,
    ) -> None:
        pairs = _pair(self.old, old, old_options, self.new, new, new_options)
        prefix = f"{field}." if field else ""
        for i, j in pairs:
            if i is None and j is not None:
                label = _label(self.new, new, new_options[j], j)
                self._variant_added(f"{prefix}{kind}[{label}]")
            elif j is None and i is not None:
                label = _label(self.old, old, old_options[i], i)
                self._variant_removed(f"{prefix}{kind}[{label}]")
            elif i is not None and j is not None:
                label = _label(self.new, new, new_options[j], j)
                pair_key = (
                    key,
                    self.old.identity(old_options[i]),
                    self.new.identity(new_options[j]),
                )
                self._views(
                    self.old.view(old_options[i]),
                    self.new.view(new_options[j]),
                    f"{prefix}{kind}[{label}]",
                    pair_key,
                )

    def _plain_to_choice(
        self,
        old: dict[str, Any],
        new: dict[str, Any],
        now: tuple[str, list[Any]],
        field: str,
        key: Any,
    ) -> None:
        """One shape became several: the old shape goes on as its likeliest variant; the
        others are new variants."""
        kind, options = now
        combined = [self.new.view({"allOf": [_outer(new), option]}) for option in options]
        best = _closest(old, combined)
        prefix = f"{field}." if field else ""
        for j, option in enumerate(options):
            if j == best:
                self._views(old, combined[j], field, (key, "as", j))
            else:
                self._variant_added(f"{prefix}{kind}[{_label(self.new, new, option, j)}]")

    def _choice_to_plain(
        self,
        old: dict[str, Any],
        new: dict[str, Any],
        was: tuple[str, list[Any]],
        field: str,
        key: Any,
    ) -> None:
        kind, options = was
        combined = [self.old.view({"allOf": [_outer(old), option]}) for option in options]
        best = _closest(new, combined)
        prefix = f"{field}." if field else ""
        for i, option in enumerate(options):
            if i == best:
                self._views(combined[i], new, field, (key, "as", i))
            else:
                self._variant_removed(f"{prefix}{kind}[{_label(self.old, old, option, i)}]")

    def _variant_added(self, path: str) -> None:
        if self.request:
            self._add(path, "variant added: may also be sent", False)
        else:
            self._add(path, "variant added: a shape the client has never seen", True)

    def _variant_removed(self, path: str) -> None:
        if self.request:
            self._add(path, "variant removed: no longer accepted", True)
        else:
            self._add(path, "variant removed: no longer sent", False)

    def _discriminator(self, old: dict[str, Any], new: dict[str, Any], field: str) -> None:
        was, now = old.get("discriminator"), new.get("discriminator")
        was = was if isinstance(was, dict) else None
        now = now if isinstance(now, dict) else None
        if was is None and now is None:
            return
        if was is None or now is None:
            message = "discriminator added" if now else "discriminator removed"
            # A reader that dispatched on the property can no longer rely on it.
            self._add(field, message, not self.request and now is None)
            return
        if was.get("propertyName") != now.get("propertyName"):
            message = (
                f"discriminator changed from {was.get('propertyName')} to {now.get('propertyName')}"
            )
            self._add(field, message, True)
        old_map, new_map = _mapping(was), _mapping(now)
        for value in sorted(old_map.keys() - new_map.keys()):
            if old_map[value] in _names(new):
                self._add(field, f"discriminator value {value} removed", self.request)
        for value in sorted(new_map.keys() - old_map.keys()):
            if new_map[value] in _names(old):
                self._add(field, f"discriminator value {value} added", not self.request)
        for value in sorted(old_map.keys() & new_map.keys()):
            if old_map[value] != new_map[value]:
                message = (
                    f"discriminator value {value} now means {new_map[value]} (was {old_map[value]})"
                )
                self._add(field, message, True)


# -- helpers ----------------------------------------------------------------------------------


def _outer(schema: dict[str, Any]) -> dict[str, Any]:
    """A choice without its alternatives: what every variant shares."""
    return {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf", "discriminator")}


def _label(resolve: Resolver, choice: dict[str, Any], option: Any, index: int) -> str:
    """How a variant is named: its ``$ref``, title, or discriminator value, else its place."""
    name = ref_name(option)
    if name:
        return name
    view = resolve.view(option)
    if isinstance(view.get("title"), str):
        return view["title"]
    value = _discriminator_value(resolve, choice, view)
    return value if value is not None else f"#{index + 1}"


def _discriminator_value(
    resolve: Resolver, choice: dict[str, Any], view: dict[str, Any]
) -> str | None:
    disc = choice.get("discriminator")
    if not isinstance(disc, dict) or not isinstance(disc.get("propertyName"), str):
        return None
    prop = resolve.view((view.get("properties") or {}).get(disc["propertyName"], {}))
    values = enum_values(prop)
    return str(values[0]) if values and len(values) == 1 else None


def _pair(
    old_r: Resolver,
    old: dict[str, Any],
    old_options: list[Any],
    new_r: Resolver,
    new: dict[str, Any],
    new_options: list[Any],
) -> list[tuple[int | None, int | None]]:
    """Old variant to new variant: the same name first, then the likeliest by shape."""
    old_labels = [_label(old_r, old, o, i) for i, o in enumerate(old_options)]
    new_labels = [_label(new_r, new, o, j) for j, o in enumerate(new_options)]
    named = {lab: j for j, lab in enumerate(new_labels) if not lab.startswith("#")}
    pairs: dict[int, int] = {}
    for i, lab in enumerate(old_labels):
        if lab in named and named[lab] not in pairs.values():
            pairs[i] = named[lab]
    old_views = {i: old_r.view(o) for i, o in enumerate(old_options) if i not in pairs}
    new_views = {j: new_r.view(o) for j, o in enumerate(new_options) if j not in pairs.values()}
    scored = sorted(
        ((_likeness(ov, nv), i, j) for i, ov in old_views.items() for j, nv in new_views.items()),
        reverse=True,
    )
    for score, i, j in scored:
        # two named variants must mostly agree to be one renamed; unnamed ones, somewhat
        named_both = not old_labels[i].startswith("#") and not new_labels[j].startswith("#")
        if score >= (0.5 if named_both else 0.01) and i not in pairs and j not in pairs.values():
            pairs[i] = j
    result: list[tuple[int | None, int | None]] = sorted(pairs.items())
    result += [(i, None) for i in range(len(old_options)) if i not in pairs]
    result += [(None, j) for j in range(len(new_options)) if j not in pairs.values()]
    return result


def _likeness(old: dict[str, Any], new: dict[str, Any]) -> float:
    """How alike two variants are: a shared type, then the share of field names in common."""
    if types(old) and types(new) and not (_expand(types(old)) & _expand(types(new))):
        return 0.0
    old_names, new_names = set(old.get("properties") or ()), set(new.get("properties") or ())
    if old_names or new_names:
        common = old_names & new_names
        return len(common) / len(old_names | new_names) if common else 0.0
    return 0.5 if types(old) == types(new) else 0.25


def _closest(schema: dict[str, Any], options: list[dict[str, Any]]) -> int:
    scores = [_likeness(schema, option) for option in options]
    return max(range(len(options)), key=lambda j: (scores[j], -j))


def _mapping(disc: dict[str, Any]) -> dict[str, str]:
    mapping = disc.get("mapping") if isinstance(disc.get("mapping"), dict) else {}
    return {str(k): ref_name({"$ref": v}) or str(v) for k, v in mapping.items()}


def _names(choice: dict[str, Any]) -> set[str]:
    found = variants(choice)
    return {ref_name(o) or "" for o in found[1]} if found else set()


def _expand(kinds: set[str]) -> set[str]:
    return kinds | {"integer"} if "number" in kinds else kinds


def _covers(wide: set[str], narrow: set[str]) -> bool:
    return narrow <= _expand(wide)


def _show_types(kinds: set[str]) -> str:
    return "|".join(sorted(kinds))


def _bound(key: str, was: Any, now: Any) -> tuple[str, bool] | None:
    """(message, narrows) for a changed minimum/maximum/length/count bound."""
    if was == now or (was is None and now is None):
        return None
    lower = key in LOWER_BOUNDS
    if isinstance(was, bool) or isinstance(now, bool):  # OpenAPI 3.0's exclusiveMinimum: true
        return (f"{key} now {str(bool(now)).lower()}", bool(now))
    if was is None:
        return (f"{key} {now} added", True)
    if now is None:
        return (f"{key} {was} removed", False)
    raised = now > was
    return (f"{key} {'raised' if raised else 'lowered'} from {was} to {now}", raised == lower)


def _restriction(key: str, was: Any, now: Any) -> tuple[str, bool | None] | None:
    """(message, narrows) for pattern/format/multipleOf; narrows None: neither wider nor
    narrower, so it breaks either side."""
    if was == now:
        return None
    if was is None:
        return (f"{key} added: {now}", True)
    if now is None:
        return (f"{key} removed (was {was})", False)
    message = f"{key} changed from {was} to {now}"
    if key == "format" and (was, now) in WIDER_FORMATS:
        return (message, False)
    if key == "multipleOf" and _numbers(was, now):
        if now % was == 0:
            return (message, True)
        if was % now == 0:
            return (message, False)
    return (message, None)


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) and v for v in values)


def _values(values: list[Any]) -> str:
    return ", ".join(sorted(map(str, values)))


def _show(value: Any) -> str:
    """A value as JSON writes it (``null``, ``false``), strings bare."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _renamed(
    removed: list[str],
    added: list[str],
    old_r: Resolver,
    old_props: dict[str, Any],
    new_r: Resolver,
    new_props: dict[str, Any],
) -> dict[str, str]:
    """Likely renames: the same name in another case style (``tracking_number`` and
    ``trackingNumber``), or the only field removed and the only one added, of one type."""
    pairs = {}
    for gone in removed:
        same = [came for came in added if plain_name(came) == plain_name(gone)]
        if len(same) == 1:
            pairs[gone] = same[0]
    if not pairs and len(removed) == 1 and len(added) == 1:
        (gone,), (came,) = removed, added
        if types(old_r.view(old_props[gone])) == types(new_r.view(new_props[came])):
            pairs[gone] = came
    return pairs


def plain_name(name: str) -> str:
    """One name whatever its case style: ``tracking_number`` and ``trackingNumber`` agree."""
    return name.replace("_", "").replace("-", "").lower()
