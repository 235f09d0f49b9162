"""Do our pacts still hold against a vendor's new OpenAPI? The upgrade gate without a sandbox.

A pact records what the consumer sends and what it reads; the vendor's OpenAPI records what the
provider accepts and promises. Each HTTP interaction is matched to an operation (path template,
then method) and breaks when the new spec:

- has no such path or method, or leaves the interaction's response status undocumented (no
  matching code, ``2XX`` range or ``default``);
- would refuse the request: a required field the interaction does not send (at any depth,
  ``packages[].weight_kg``), a value of another JSON type or outside an enum, a field refused by
  ``additionalProperties: false``, a required query parameter or header not sent, a required
  body not sent or a content type not accepted;
- does not promise what the consumer reads (every field of the interaction's response body):
  a field not among the schema's properties (one allowed only by ``additionalProperties`` is not
  promised either), of another JSON type (integer and number are one), or whose value is outside
  the enum.

Warnings do not break: a field the consumer reads that the new spec does not require (or lets be
null), a request field the spec does not describe (the provider may ignore it), a response
header not documented, a free-form object's keys. Asynchronous messages are events, not HTTP:
they are skipped and counted. Patterns, formats and lengths are not compared.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.contracts.openapi_diff import METHODS, SpecError
from harness.contracts.pacts import HTTP, MESSAGE, Body, Interaction, Pact, PactError, load
from harness.contracts.schema_compare import plain_name
from harness.contracts.schema_resolve import Resolver, parameter_schema, ref_name

REQUEST, RESPONSE = "request", "response"
# OpenAPI ignores header parameters of these names: the media types and security cover them.
IGNORED_HEADERS = {"accept", "content-type", "authorization"}


@dataclass(frozen=True)
class Problem:
    where: str  # "response 201 body: tracking_number", "request query: since", "operation"
    message: str
    breaking: bool


@dataclass
class InteractionResult:
    pact: str  # its file
    consumer: str
    provider: str
    description: str
    operation: str  # "POST /labels/{label_id}" once matched, else "POST /labels/LB-1"
    problems: list[Problem] = field(default_factory=list)
    skipped: str | None = None  # why it was not checked

    @property
    def outcome(self) -> str:
        if self.skipped is not None:
            return "skipped"
        return "broken" if self.breaking else "ok"

    @property
    def breaking(self) -> list[Problem]:
        return [p for p in self.problems if p.breaking]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.breaking]


@dataclass
class CheckResult:
    pacts: list[Pact]
    results: list[InteractionResult]

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def passed(self) -> bool:
        return self.count("broken") == 0

    def summary(self) -> str:
        broken, ok, skipped = self.count("broken"), self.count("ok"), self.count("skipped")
        warned = sum(bool(r.warnings) for r in self.results if r.outcome == "ok")
        text = f"{broken} broken, {ok} hold"
        if warned:
            text += f" ({warned} with warnings)"
        return text + f", {skipped} skipped of {len(self.results)} interactions"


def check(
    pacts: Iterable[Path | dict[str, Any] | Pact], spec: dict[str, Any], provider: str | None
) -> CheckResult:
    """Check every interaction of the pacts for ``provider`` (all pacts when None) against
    ``spec``. Raises PactError when the pacts cannot be paired with the spec."""
    if not isinstance(spec, dict) or not isinstance(spec.get("paths"), dict):
        raise SpecError("not an OpenAPI document (no paths)")
    loaded = [p if isinstance(p, Pact) else load(p) for p in pacts]
    names = sorted({p.provider for p in loaded})
    if provider is not None:
        loaded = [p for p in loaded if p.provider == provider]
        if not loaded:
            raise PactError(
                f"no pact for provider {provider!r} (pacts found for: {', '.join(names)})"
            )
    elif len(names) > 1:
        # every pact against one vendor's spec would only report noise
        raise PactError(
            f"pacts for {len(names)} providers ({', '.join(names)}): choose one with --provider"
        )
    spec_check = _SpecCheck(spec)
    results = [spec_check.interaction(p, i) for p in loaded for i in p.interactions]
    return CheckResult(loaded, results)


class _SpecCheck:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.resolve = Resolver(spec)
        self.paths = {
            str(template): (self.resolve(item), _template_pattern(str(template)))
            for template, item in spec["paths"].items()
            if isinstance(self.resolve(item), dict)
        }
        # A pact records the full path; the spec's paths sit under its servers' base paths.
        bases = {
            urlparse(str(s.get("url", ""))).path.rstrip("/") for s in spec.get("servers") or []
        }
        self.bases = ["", *sorted(b for b in bases if b)]

    def interaction(self, pact: Pact, interaction: Interaction) -> InteractionResult:
        method, path = interaction.method, interaction.path
        result = InteractionResult(
            pact.source, pact.consumer, pact.provider, interaction.description, ""
        )
        if interaction.kind != HTTP:
            result.operation = "(message)" if interaction.kind == MESSAGE else "(not HTTP)"
            result.skipped = (
                "asynchronous messages (events, not HTTP calls)"
                if interaction.kind == MESSAGE
                else f"{interaction.kind} interactions (not HTTP calls)"
            )
            return result
        result.operation = f"{method} {path}"
        found = self._path(path)
        if found is None:
            result.problems.append(Problem("operation", f"no path matches {path}", True))
            return result
        template, item, arguments = found
        result.operation = f"{method} {template}"
        operation = self.resolve(item.get(method.lower()))
        if method.lower() not in item or not isinstance(operation, dict):
            documented = ", ".join(m.upper() for m in METHODS if m in item) or "none"
            message = f"method {method} not documented on {template} (documented: {documented})"
            result.problems.append(Problem("operation", message, True))
            return result
        problems = self._parameters(item, operation, interaction, arguments)
        problems += self._request_body(operation, interaction.body)
        problems += self._response(operation, interaction)
        result.problems = list(dict.fromkeys(problems))  # an array's items repeat their findings
        return result

    # -- finding the operation --------------------------------------------------------------

    def _path(self, path: str) -> tuple[str, dict[str, Any], dict[str, str]] | None:
        """The template ``path`` falls under; a literal segment wins over a parameter."""
        path = path.split("?")[0]
        for base in self.bases:
            if base and not (path == base or path.startswith(base + "/")):
                continue
            rest = path[len(base) :] or "/"
            matches = []
            for template, (item, pattern) in self.paths.items():
                match = pattern.fullmatch(rest.rstrip("/") or "/")
                if match:
                    matches.append((template.count("{"), template, item, match.groupdict()))
            if matches:
                _, template, item, arguments = min(matches, key=lambda m: m[:2])
                return template, item, arguments
        return None

    # -- the request ------------------------------------------------------------------------

    def _parameters(
        self,
        item: dict[str, Any],
        operation: dict[str, Any],
        interaction: Interaction,
        arguments: dict[str, str],
    ) -> list[Problem]:
        declared: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*(item.get("parameters") or []), *(operation.get("parameters") or [])]:
            parameter = self.resolve(raw)
            if isinstance(parameter, dict) and "name" in parameter:
                declared[(str(parameter["name"]), str(parameter.get("in")))] = parameter
        problems = []
        for (name, where), parameter in declared.items():
            sent: list[str] | None = None
            if where == "path":
                sent = [arguments[name]] if name in arguments else None
            elif where == "query":
                sent = interaction.query.get(name)
            elif where == "header" and name.lower() not in IGNORED_HEADERS:
                header = interaction.headers.get(name.lower())
                sent = None if header is None else [header]
            else:
                continue  # cookies: a pact rarely records them
            at = f"request {where}: {name}"
            if sent is None:
                if parameter.get("required") and where != "path":
                    problems.append(Problem(at, "required parameter not sent", True))
                continue
            schema = self._flat(parameter_schema(self.resolve, parameter))
            if schema.get("type") == "array":
                schema = self._flat(schema.get("items"))
            for text in sent:
                problems += self._value(_from_text(text, schema), schema, REQUEST, at, "")
        return problems

    def _request_body(self, operation: dict[str, Any], body: Body | None) -> list[Problem]:
        documented = self.resolve(operation.get("requestBody"))
        if body is None:
            if isinstance(documented, dict) and documented.get("required"):
                return [Problem("request body", "required by the new spec, not sent", True)]
            return []
        if not isinstance(documented, dict) or not documented.get("content"):
            return [Problem("request body", "not documented: the provider may ignore it", False)]
        content = documented["content"]
        media = _media(content, body.content_type)
        if media is None:
            accepted = ", ".join(content)
            message = f"content type {body.content_type} not accepted (accepts: {accepted})"
            return [Problem("request body", message, True)]
        schema = content[media].get("schema") if isinstance(content[media], dict) else None
        if not body.json or schema is None:
            return []
        return self._value(body.value, schema, REQUEST, "request body", "")

    # -- the response -----------------------------------------------------------------------

    def _response(self, operation: dict[str, Any], interaction: Interaction) -> list[Problem]:
        status = interaction.status
        responses = {str(k).upper(): v for k, v in (operation.get("responses") or {}).items()}
        key = next(
            (k for k in (str(status), f"{status // 100}XX", "DEFAULT") if k in responses), None
        )
        where = f"response {status}"
        if key is None:
            documented = ", ".join(k.lower() for k in responses) or "none"
            return [Problem(where, f"status not documented (documented: {documented})", True)]
        documented = self.resolve(responses[key])
        documented = documented if isinstance(documented, dict) else {}
        problems = []
        headers = {str(k).lower() for k in documented.get("headers") or {}}
        for name in interaction.response_headers:
            if name != "content-type" and name not in headers:
                message = "header not documented: the provider may not send it"
                problems.append(Problem(f"{where} header: {name}", message, False))
        body = interaction.response_body
        if body is None:
            return problems
        content = documented.get("content") or {}
        if not content:
            return [*problems, Problem(f"{where} body", "the new spec documents no body", True)]
        media = _media(content, body.content_type)
        if media is None:
            offered = ", ".join(content)
            message = f"content type {body.content_type} not offered (offers: {offered})"
            return [*problems, Problem(f"{where} body", message, True)]
        schema = content[media].get("schema") if isinstance(content[media], dict) else None
        if schema is None and body.json:
            message = "no schema in the new spec: the fields read are not checked"
            return [*problems, Problem(f"{where} body", message, False)]
        if body.json:
            problems += self._value(body.value, schema, RESPONSE, f"{where} body", "")
        return problems

    # -- one value against one schema -------------------------------------------------------

    def _value(self, value: Any, schema: Any, side: str, where: str, name: str) -> list[Problem]:
        """What breaks (or only warns) when ``value`` stands for what the consumer sends
        (request) or reads (response) at field ``name`` and the new spec says ``schema``."""
        schema = self._flat(schema)
        at = f"{where}: {name}" if name else where
        if value is None and _nullable(schema):
            return []
        options = schema.get("oneOf") or schema.get("anyOf")
        if isinstance(options, list) and options:
            return self._one_of(value, schema, options, side, where, name)
        kinds = _types(schema)
        found = _json_type(value)
        if kinds and not _compatible(value, found, kinds, side):
            expected = " or ".join(sorted(kinds))
            message = f"type changed: {found} in the pact, {expected} in the new spec"
            return [Problem(at, message, True)]
        problems = []
        enum = schema.get("enum")
        if isinstance(enum, list) and not any(_same(value, e) for e in enum):
            values = ", ".join(_show(e) for e in enum)
            message = f"{_show(value)} not in the new spec's enum ({values})"
            problems.append(Problem(at, message, True))
        if side == RESPONSE and name and value is not None and _nullable(schema, declared=True):
            problems.append(Problem(at, "nullable in the new spec: may come as null", False))
        if isinstance(value, dict):
            problems += self._object(value, schema, side, where, name)
        elif isinstance(value, list) and "items" in schema:
            for item in value:
                problems += self._value(item, schema["items"], side, where, f"{name}[]")
        return problems

    def _object(
        self, value: dict[str, Any], schema: dict[str, Any], side: str, where: str, name: str
    ) -> list[Problem]:
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        prefix = f"{name}." if name else ""
        if not properties and extra is not False:
            # a map (its keys are data: ids, SKUs) or a free-form object: no field is named
            if isinstance(extra, dict):
                found = []
                for item in value.values():
                    found += self._value(item, extra, side, where, f"{prefix}*")
                return found
            if side == RESPONSE:
                return [
                    Problem(f"{where}: {prefix}{key}", "in a free-form object: not promised", False)
                    for key in value
                ]
            return []
        check = self._sent if side == REQUEST else self._read
        return check(value, schema, properties, extra, where, prefix)

    def _sent(
        self,
        value: dict[str, Any],
        schema: dict[str, Any],
        properties: dict[str, Any],
        extra: Any,
        where: str,
        prefix: str,
    ) -> list[Problem]:
        """A request object: every required field sent (a read-only one is the provider's to
        fill), every field sent accepted."""
        read_only = {k for k, p in properties.items() if self._flat(p).get("readOnly")}
        required = [k for k in dict.fromkeys(schema.get("required") or ()) if k not in read_only]
        missing = [key for key in required if key not in value]
        unknown = [key for key in value if key not in properties]
        renamed = self._renamed(value, properties, unknown, missing, REQUEST)
        renamed_from = {new: old for old, new in renamed.items()}
        problems = []
        for key in missing:
            hint = f" (renamed from {renamed_from[key]}?)" if key in renamed_from else ""
            message = f"required field not sent{hint}"
            problems.append(Problem(f"{where}: {prefix}{key}", message, True))
        for key, item in value.items():
            at = f"{where}: {prefix}{key}"
            if key in read_only:
                message = "read-only in the new spec: the provider ignores it"
                problems.append(Problem(at, message, False))
            elif key in properties:
                problems += self._value(item, properties[key], REQUEST, where, prefix + key)
            elif extra is False:
                problems.append(Problem(at, "not accepted (additionalProperties: false)", True))
            else:
                hint = f" (renamed to {renamed[key]}?)" if key in renamed else ""
                message = f"not in the new spec{hint}: the provider may ignore it"
                problems.append(Problem(at, message, False))
        return problems

    def _read(
        self,
        value: dict[str, Any],
        schema: dict[str, Any],
        properties: dict[str, Any],
        extra: Any,
        where: str,
        prefix: str,
    ) -> list[Problem]:
        """A response object: every field the consumer reads promised, of its type."""
        required = set(schema.get("required") or ())
        write_only = {k for k, p in properties.items() if self._flat(p).get("writeOnly")}
        unknown = [key for key in value if key not in properties]
        unread = [key for key in properties if key not in value and key not in write_only]
        renamed = self._renamed(value, properties, unknown, unread, RESPONSE)
        problems = []
        for key, item in value.items():
            at = f"{where}: {prefix}{key}"
            if key in write_only:
                problems.append(Problem(at, "write-only in the new spec: never answered", True))
                continue
            if key in properties:
                problems += self._value(item, properties[key], RESPONSE, where, prefix + key)
                if key not in required:
                    message = "not required in the new spec: may be left out"
                    problems.append(Problem(at, message, False))
                continue
            hint = f" (renamed to {renamed[key]}?)" if key in renamed else ""
            if extra not in (None, False):
                hint += " (allowed by additionalProperties only: not promised)"
            problems.append(Problem(at, f"field not in the new spec{hint}", True))
        return problems

    def _renamed(
        self,
        value: dict[str, Any],
        properties: dict[str, Any],
        gone: list[str],
        candidates: list[str],
        side: str,
    ) -> dict[str, str]:
        """Likely renames of fields of ``value`` the schema lacks (``gone``) to properties the
        interaction does not use (``candidates``), of a compatible type: one name in another
        case style, a property whose description names the old field, the only property
        sharing the old name's first word; else the only one gone and the only candidate."""

        def fits(old: str, new: str) -> bool:
            kinds = _types(self._flat(properties[new]))
            return not kinds or _compatible(value[old], _json_type(value[old]), kinds, side)

        def described(old: str, new: str) -> bool:
            text = str(self._flat(properties[new]).get("description", ""))
            return re.search(rf"(?<![\w.]){re.escape(old)}(?!\w)", text) is not None

        rules: list[Callable[[str, str], bool]] = [
            lambda old, new: plain_name(old) == plain_name(new),
            described,
            lambda old, new: len(_first_word(old)) > 2 and _first_word(old) == _first_word(new),
        ]
        pairs = {}
        for old in gone:
            for rule in rules:
                found = [new for new in candidates if rule(old, new) and fits(old, new)]
                if len(found) == 1:
                    pairs[old] = found[0]
                    break
        if not pairs and len(gone) == 1 and len(candidates) == 1 and fits(gone[0], candidates[0]):
            pairs[gone[0]] = candidates[0]
        return pairs

    def _one_of(
        self,
        value: Any,
        schema: dict[str, Any],
        options: list[Any],
        side: str,
        where: str,
        name: str,
    ) -> list[Problem]:
        """The value holds when one alternative holds (the one its discriminator names, when
        the schema has one); else the closest one's problems."""
        rest = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf", "discriminator")}
        picked = _discriminated(value, schema, options)
        if picked is not None and not picked:
            prop = schema["discriminator"]["propertyName"]
            named = ", ".join(sorted(_discriminator_values(schema, options)))
            message = f"{_show(value[prop])} names no variant in the new spec ({named})"
            return [
                Problem(f"{where}: {name}.{prop}" if name else f"{where}: {prop}", message, True)
            ]
        options = picked or options
        tried = []
        for option in options:
            found = self._value(value, {"allOf": [rest, option]}, side, where, name)
            if not any(p.breaking for p in found):
                return found
            tried.append(found)
        return min(tried, key=lambda found: sum(p.breaking for p in found))

    def _flat(self, schema: Any) -> dict[str, Any]:
        """The schema with ``$ref``s followed and ``allOf`` merged into one (as ``contracts
        diff`` reads it)."""
        return self.resolve.view(schema)


def _discriminated(value: Any, schema: dict[str, Any], options: list[Any]) -> list[Any] | None:
    """The variants a discriminator names for ``value``: None when it does not apply, empty
    when it names none of them."""
    disc = schema.get("discriminator")
    if not isinstance(disc, dict) or not isinstance(value, dict):
        return None
    prop = disc.get("propertyName")
    if not isinstance(prop, str) or prop not in value:
        return None
    wanted = _discriminator_map(disc).get(str(value[prop]), str(value[prop]))
    named = [o for o in options if ref_name(o) is not None]
    if not named:
        return None  # inline variants: nothing to name, try each
    return [o for o in named if ref_name(o) == wanted]


def _discriminator_map(disc: dict[str, Any]) -> dict[str, str]:
    mapping = disc.get("mapping") if isinstance(disc.get("mapping"), dict) else {}
    return {str(k): ref_name({"$ref": str(v)}) or str(v) for k, v in mapping.items()}


def _discriminator_values(schema: dict[str, Any], options: list[Any]) -> set[str]:
    """The mapping's values that lead to a variant, and each variant's own name (a
    discriminator matches schema names too)."""
    targets = {name for name in map(ref_name, options) if name}
    mapped = _discriminator_map(schema["discriminator"])
    return {k for k, v in mapped.items() if v in targets} | targets


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{([^}/]+)\}", template.rstrip("/") or "/")
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{_group(part, i)}>[^/]+)"
        for i, part in enumerate(parts)
    )
    return re.compile(regex)


def _group(name: str, index: int) -> str:
    return name if name.isidentifier() else f"p{index}"


def _media(content: dict[str, Any], content_type: str | None) -> str | None:
    """The documented media type a body of ``content_type`` falls under (JSON when unknown)."""
    wanted = (content_type or "application/json").split(";")[0].strip().lower()
    plain = {media: str(media).split(";")[0].strip().lower() for media in content}
    for media, kind in plain.items():
        if kind == wanted:
            return media
    for media, kind in plain.items():
        if kind == "*/*" or (kind.endswith("/*") and wanted.startswith(kind[:-1])):
            return media
    return None


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if isinstance(kind, str) else set()
    if not kinds and "properties" in schema:
        kinds = {"object"}
    elif not kinds and "items" in schema:
        kinds = {"array"}
    return kinds - {"null"}


def _nullable(schema: dict[str, Any], declared: bool = False) -> bool:
    """Null allowed: OpenAPI 3.0 ``nullable``, 3.1 ``type: [.., "null"]``; or, unless only
    ``declared`` counts, a schema that says nothing about types."""
    kind = schema.get("type")
    if schema.get("nullable") is True or (isinstance(kind, list) and "null" in kind):
        return True
    if isinstance(schema.get("enum"), list) and None in schema["enum"]:
        return True
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    return not declared and not _types(schema) and "enum" not in schema and not alternatives


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _compatible(value: Any, found: str, kinds: set[str], side: str) -> bool:
    """Integer and number are one, except that a request must not send a fraction where the
    provider wants an integer."""
    if found in kinds or (found == "integer" and "number" in kinds):
        return True
    if found == "number" and "integer" in kinds:
        return side == RESPONSE or float(value).is_integer()
    return False


def _same(value: Any, allowed: Any) -> bool:
    return isinstance(value, bool) == isinstance(allowed, bool) and value == allowed


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def _from_text(text: str, schema: dict[str, Any]) -> Any:
    """A path, query or header value as the JSON type its schema names, when it is one."""
    kinds = _types(schema)
    try:
        if "integer" in kinds and re.fullmatch(r"-?\d+", text):
            return int(text)
        if "number" in kinds:
            return float(text)
    except ValueError:
        return text
    if "boolean" in kinds and text in ("true", "false"):
        return text == "true"
    return text


def _first_word(name: str) -> str:
    return re.split(r"[_\-]|(?<=[a-z0-9])(?=[A-Z])", name)[0].lower()
