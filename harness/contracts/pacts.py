"""Reading Pact files into plain interactions, whatever the specification version.

pact-python 4.2 writes specification V4: ``interactions`` typed ``Synchronous/HTTP`` or
``Asynchronous/Messages``, bodies wrapped as ``{"content", "contentType", "encoded"}``, header
and query values as lists. V2/V3 files (untyped interactions with plain bodies, a
``providerState`` or ``providerStates``, V3 message pacts under ``messages``) read the same way,
so the OpenAPI check never looks at the file format.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

HTTP = "Synchronous/HTTP"
MESSAGE = "Asynchronous/Messages"


class PactError(Exception):
    """Pact files we cannot read or use: one line for the user."""


@dataclass(frozen=True)
class Body:
    value: Any  # parsed JSON when ``json``, else the raw text
    content_type: str | None
    json: bool


@dataclass(frozen=True)
class Interaction:
    description: str
    kind: str  # HTTP, MESSAGE or whatever other type a V4 file names
    states: tuple[str, ...] = ()
    method: str = ""
    path: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    body: Body | None = None
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: Body | None = None
    contents: Body | None = None  # a message's

    @property
    def event_type(self) -> str | None:
        """A message's envelope ``type`` (``order.picked``): the event a provider must send."""
        value = self.contents.value if self.contents is not None else None
        kind = value.get("type") if isinstance(value, dict) else None
        return kind if isinstance(kind, str) else None


@dataclass(frozen=True)
class Pact:
    consumer: str
    provider: str
    source: str  # the file, or "<dict>"
    interactions: tuple[Interaction, ...]


def files(path: Path) -> list[Path]:
    """The pact files a ``--pacts`` argument names: a folder's ``*.json`` or one file."""
    if path.is_dir():
        found = sorted(path.glob("*.json"))
        if not found:
            raise PactError(f"no pact files (*.json) in {path}")
        return found
    if not path.is_file():
        raise PactError(f"no such pact file or folder: {path}")
    return [path]


def load(source: Path | dict[str, Any]) -> Pact:
    if isinstance(source, dict):
        return parse(source, "<dict>")
    try:
        document = json.loads(source.read_text())
    except OSError as exc:
        raise PactError(f"cannot read {source}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PactError(f"{source}: not JSON ({exc.__class__.__name__})") from None
    return parse(document, str(source))


def parse(document: Any, source: str) -> Pact:
    if not isinstance(document, dict) or not (
        isinstance(document.get("interactions"), list) or isinstance(document.get("messages"), list)
    ):
        raise PactError(f"{source}: not a pact (no interactions)")
    consumer = _name(document.get("consumer"))
    provider = _name(document.get("provider"))
    if not provider:
        raise PactError(f"{source}: not a pact (no provider name)")
    version = str(_get(document, "metadata", "pactSpecification", "version") or "")
    v4 = version.startswith("4")
    found = []
    for raw in document.get("interactions") or []:
        if isinstance(raw, dict):
            found.append(_interaction(raw, v4 or "type" in raw))
    for raw in document.get("messages") or []:  # a V3 message pact
        if isinstance(raw, dict):
            contents = _body({"body": raw.get("contents")}, _headers(raw.get("metadata")), False)
            found.append(
                Interaction(
                    str(raw.get("description", "")), MESSAGE, _states(raw), contents=contents
                )
            )
    return Pact(consumer, provider, source, tuple(found))


def _interaction(raw: dict[str, Any], v4: bool) -> Interaction:
    description = str(raw.get("description", ""))
    kind = raw.get("type") or (HTTP if "request" in raw else MESSAGE)
    if kind != HTTP:
        contents = _body({"body": raw.get("contents")}, _headers(raw.get("metadata")), v4)
        return Interaction(description, str(kind), _states(raw), contents=contents)
    request = raw.get("request") if isinstance(raw.get("request"), dict) else {}
    response = raw.get("response") if isinstance(raw.get("response"), dict) else {}
    headers = _headers(request.get("headers"))
    response_headers = _headers(response.get("headers"))
    try:
        status = int(response.get("status", 200))
    except (TypeError, ValueError):
        status = 0
    return Interaction(
        description,
        HTTP,
        _states(raw),
        method=str(request.get("method", "GET")).upper(),
        path=str(request.get("path", "/")),
        query=_query(request.get("query")),
        headers=headers,
        body=_body(request, headers, v4),
        status=status,
        response_headers=response_headers,
        response_body=_body(response, response_headers, v4),
    )


def _name(party: Any) -> str:
    return str(party.get("name", "")) if isinstance(party, dict) else ""


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _states(raw: dict[str, Any]) -> tuple[str, ...]:
    states = raw.get("providerStates")
    if isinstance(states, list):
        return tuple(str(s.get("name", "")) for s in states if isinstance(s, dict))
    single = raw.get("providerState")  # V2
    return (str(single),) if single else ()


def _headers(raw: Any) -> dict[str, str]:
    """Header names in lower case; V4 lists of values joined as one header line would be."""
    if not isinstance(raw, dict):
        return {}
    joined = {}
    for name, value in raw.items():
        values = value if isinstance(value, list) else [value]
        joined[str(name).lower()] = ", ".join(str(v) for v in values)
    return joined


def _query(raw: Any) -> dict[str, list[str]]:
    if isinstance(raw, str):  # V2: a query string
        return parse_qs(raw, keep_blank_values=True)
    if not isinstance(raw, dict):
        return {}
    return {
        str(name): [str(v) for v in (value if isinstance(value, list) else [value])]
        for name, value in raw.items()
    }


def _body(message: dict[str, Any], headers: dict[str, str], v4: bool) -> Body | None:
    raw = message.get("body")
    if raw is None:  # no body (V2/V3 may write it as null)
        return None
    content_type = headers.get("content-type")
    if not (v4 and isinstance(raw, dict) and "content" in raw):
        # V2/V3: the body itself; a string under a JSON content type is JSON text
        if isinstance(raw, str) and _is_json(content_type):
            return _parsed(raw, content_type)
        return Body(raw, content_type, not isinstance(raw, str))
    content_type = raw.get("contentType") or content_type
    content, encoded = raw.get("content"), raw.get("encoded")
    if encoded and isinstance(content, str):
        if encoded != "json":  # "base64": bytes of whatever content type
            try:
                content = base64.b64decode(content).decode()
            except (binascii.Error, UnicodeDecodeError):
                return Body(content, content_type, False)
        if encoded == "json" or _is_json(content_type):
            return _parsed(content, content_type)
        return Body(content, content_type, False)
    return Body(content, content_type, _is_json(content_type) or not isinstance(content, str))


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and "json" in content_type.split(";")[0].lower()


def _parsed(text: str, content_type: str | None) -> Body:
    try:
        return Body(json.loads(text), content_type, True)
    except json.JSONDecodeError:
        return Body(text, content_type, False)  # declared JSON, is not: not checked
