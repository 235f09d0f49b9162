"""Comparing what an operation asks of a client's credentials in two versions of a document.

An operation's ``security`` (else the document's) lists alternatives; a client satisfies one of
them, all of its schemes at once, with every scope listed. A client breaks when the credentials
that satisfied an old alternative satisfy no new one: authentication added where none was
needed, a scheme it used removed or redefined (another ``type``, ``in``, ``name``, HTTP
``scheme``, OAuth flow or URL), another scheme needed alongside, a scope added. A new
alternative, a scope dropped, or authentication made optional, asks nothing more.
"""

from __future__ import annotations

from typing import Any

from harness.contracts.schema_compare import Change

Requirement = dict[str, frozenset[str]]  # scheme name -> scopes
SCHEME_FIELDS = ("type", "in", "name", "scheme", "openIdConnectUrl")
FLOW_URLS = ("authorizationUrl", "tokenUrl")


def compare(
    op: str,
    old_spec: dict[str, Any],
    old_op: dict[str, Any],
    new_spec: dict[str, Any],
    new_op: dict[str, Any],
) -> list[Change]:
    was, now = requirements(old_spec, old_op), requirements(new_spec, new_op)
    if _anonymous(now):
        if _anonymous(was):
            return []
        return [Change(op, "security", "authentication no longer required", False)]
    if _anonymous(was):
        shown = " or ".join(_show(r) for r in now)
        return [Change(op, "security", f"authentication now required: {shown}", True)]
    changed = _redefined(old_spec, new_spec, {s for r in was for s in r})
    changes: list[Change] = []
    for old in was:
        if any(_satisfies(old, new, changed) for new in now):
            continue
        if any(_satisfies(old, new, {}) for new in now):  # but for a redefined scheme
            changes += [Change(op, f"security: {n}", changed[n], True) for n in old if n in changed]
        else:
            changes.append(_unsatisfied(op, old, now))
    reported = {c.where for c in changes}
    for name, message in changed.items():  # still satisfied through another alternative
        if f"security: {name}" not in reported:
            changes.append(Change(op, f"security: {name}", message, False))
    for new in now:
        if not any(new.keys() <= old.keys() or old.keys() <= new.keys() for old in was):
            changes.append(Change(op, "security", f"alternative added: {_show(new)}", False))
        for old in was:
            if old.keys() == new.keys():
                changes += _scopes_dropped(op, old, new)
    return list(dict.fromkeys(changes))


def requirements(spec: dict[str, Any], operation: dict[str, Any]) -> list[Requirement]:
    """The operation's alternatives (its own ``security``, else the document's)."""
    listed = operation["security"] if "security" in operation else spec.get("security")
    found = []
    for alternative in listed if isinstance(listed, list) else []:
        if isinstance(alternative, dict):
            found.append({str(k): frozenset(map(str, v or ())) for k, v in alternative.items()})
    return found


def _anonymous(alternatives: list[Requirement]) -> bool:
    """No list, or an empty alternative (``{}``): a request without credentials is accepted."""
    return not alternatives or any(not r for r in alternatives)


def _satisfies(old: Requirement, new: Requirement, changed: dict[str, str]) -> bool:
    """Credentials for ``old`` satisfy ``new``: no scheme more, none redefined, no scope more."""
    return all(
        name in old and name not in changed and scopes <= old[name] for name, scopes in new.items()
    )


def _unsatisfied(op: str, old: Requirement, now: list[Requirement]) -> Change:
    """Why a client's credentials no longer do, named after the closest new alternative."""
    same = [new for new in now if new.keys() == old.keys()]
    for new in same:
        extra = {n: sorted(new[n] - old[n]) for n in new if new[n] - old[n]}
        if extra:
            name, scopes = next(iter(sorted(extra.items())))
            return Change(op, f"security: {name}", f"scopes added: {', '.join(scopes)}", True)
    wider = [new for new in now if new.keys() > old.keys()]
    if wider:
        more = " and ".join(sorted(wider[0].keys() - old.keys()))
        return Change(op, "security", f"{_show(old)} now also needs {more}", True)
    return Change(op, "security", f"requirement removed: {_show(old)}", True)


def _scopes_dropped(op: str, old: Requirement, new: Requirement) -> list[Change]:
    return [
        Change(op, f"security: {n}", f"scopes removed: {', '.join(sorted(old[n] - new[n]))}", False)
        for n in sorted(new)
        if old[n] - new[n]
    ]


def _redefined(
    old_spec: dict[str, Any], new_spec: dict[str, Any], used: set[str]
) -> dict[str, str]:
    """Schemes the old requirements use that the new document removed or defines otherwise."""
    found = {}
    old_schemes, new_schemes = _schemes(old_spec), _schemes(new_spec)
    for name in sorted(used):
        if name not in old_schemes:
            continue
        if name not in new_schemes:
            found[name] = "scheme no longer defined"
        elif why := _scheme_change(old_schemes[name], new_schemes[name]):
            found[name] = f"scheme changed: {why}"
    return found


def _schemes(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    components = spec.get("components") if isinstance(spec.get("components"), dict) else {}
    schemes = components.get("securitySchemes")
    return {str(k): v for k, v in schemes.items() if isinstance(v, dict)} if schemes else {}


def _scheme_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    for key in SCHEME_FIELDS:
        was, now = _field(old, key), _field(new, key)
        if was != now:
            return f"{key} {was or '(none)'} -> {now or '(none)'}"
    old_flows, new_flows = old.get("flows") or {}, new.get("flows") or {}
    if gone := sorted(set(old_flows) - set(new_flows)):
        return f"flow {', '.join(gone)} removed"
    for flow in sorted(set(old_flows) & set(new_flows)):
        for key in FLOW_URLS:
            was, now = (old_flows[flow] or {}).get(key), (new_flows[flow] or {}).get(key)
            if was != now:
                return f"{flow} {key} {was} -> {now}"
    return None


def _field(scheme: dict[str, Any], key: str) -> str | None:
    """Header names and HTTP auth schemes compare case-insensitively."""
    value = scheme.get(key)
    if value is None:
        return None
    if key == "scheme" or (key == "name" and scheme.get("in") == "header"):
        return str(value).lower()
    return str(value)


def _show(requirement: Requirement) -> str:
    if not requirement:
        return "(none)"
    return " and ".join(
        f"{name} ({', '.join(sorted(scopes))})" if scopes else name
        for name, scopes in sorted(requirement.items())
    )
