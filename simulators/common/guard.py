"""The simulators' front door: who may drive them, and where they may call back.

A simulator listens on a developer's machine or a CI runner, where any web page open in a
browser can send it requests, and its control plane (``/_sim/``) can reset it or break it on
purpose. So every simulator, whatever serves it, checks each request before anything else:

- **Host** (every route; requests that came over a socket): the name the client used must be
  this machine's, so a DNS-rebinding page (``evil.example`` resolved to 127.0.0.1, Host still
  ``evil.example``) is refused. Accepted: an IP address (a rebinding page cannot send one: its
  Host is always its own name), ``localhost`` and ``*.localhost``, this machine's host name,
  and the names the user allows (``twinyard sims --allow-host``). In process (an ASGI test
  client, no socket, nothing a browser can reach) there is nothing to rebind: not checked.
- **Origin** (every route): a request carrying an ``Origin`` other than the simulator's own
  (``http://`` or ``https://`` plus its Host) is refused. Browsers send Origin on every
  cross-origin request that is not a plain GET, so no web page can change anything here;
  server-side clients (a stack, curl, the harness) send none.
- **Token** (``/_sim/`` writes: any method but GET and HEAD, provider states included): when
  the simulator has a token, ``Authorization: Bearer <token>`` or ``X-Twinyard-Token: <token>``
  is required. Every entry point that serves over sockets (``twinyard run``, ``twinyard sims``,
  the pytest fixtures, ``contracts verify``) makes one per run; a simulator built in a test
  (``simulators.build`` without ``guard=``) has none. Reads of ``/_sim/`` stay open: a browser
  cannot read them across origins, and a rebinding page is refused by the Host check.
- **JSON** (``/_sim/`` writes): a body must be ``Content-Type: application/json``; any other
  content type, or a body without one, is refused with 415 (the content types a browser may
  send without asking first are exactly ``text/plain``, form and multipart).

Webhook subscriptions may call only this machine (``localhost``, ``127.0.0.0/8``, ``::1``) or a
host the user allowed (``TWINYARD_WEBHOOK_ALLOW``; ``twinyard run --stack-url`` adds its
stack's host itself); link-local addresses (``169.254.0.0/16``, cloud metadata) never.

Refusals are vendor-style error bodies (``simulators.common.errors``); none of them is
journalled as a control-plane call, a refused business call is journalled like any other.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import Scope

from simulators.common.errors import SimError, unprocessable

CONTROL_PREFIX = "/_sim/"
READS = frozenset({"GET", "HEAD"})
TOKEN_HEADER = "X-Twinyard-Token"
TOKEN_ENV = "TWINYARD_CONTROL_TOKEN"  # how a launched stack (and `twinyard sims`) gets it
WEBHOOK_ALLOW_ENV = "TWINYARD_WEBHOOK_ALLOW"  # hosts subscriptions may call beyond loopback
NEVER_CALLED = frozenset({"metadata.google.internal"})  # cloud metadata by name
JSON_MEDIA = "application/json"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def new_token() -> str:
    """A control-plane token: 32 URL-safe characters from the OS's randomness."""
    return secrets.token_urlsafe(24)


def usable_token(token: str) -> bool:
    """A token a user chose travels in a header: visible ASCII, no spaces, not empty."""
    return re.fullmatch(r"[\x21-\x7e]+", token) is not None


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps a server on this machine alone."""
    name = _bare(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _address(name)
    return address is not None and address.is_loopback


def names(values: Iterable[str] | str | None) -> frozenset[str]:
    """Host names or addresses from options or a variable (commas or spaces between them)."""
    if values is None:
        return frozenset()
    if isinstance(values, str):
        values = [values]
    found = {_bare(part) for value in values for part in re.split(r"[,\s]+", value)}
    return frozenset(found - {""})


def webhook_allow_from_env() -> frozenset[str]:
    """The hosts ``TWINYARD_WEBHOOK_ALLOW`` lets subscriptions call (none when unset)."""
    return names(os.environ.get(WEBHOOK_ALLOW_ENV))


@dataclass(frozen=True)
class Guard:
    """What a simulator lets in; one per run, shared by its four simulators.

    ``token``: required on ``/_sim/`` writes (None: not required, a simulator built in a test).
    ``hosts``: Host names accepted beyond this machine's own. ``webhook_hosts``: hosts (names,
    addresses or networks such as ``10.0.0.0/8``) subscriptions may call beyond loopback.
    """

    token: str | None = None
    hosts: frozenset[str] = frozenset()
    webhook_hosts: frozenset[str] = frozenset()

    # -- requests ----------------------------------------------------------------------------
    def refusal(self, scope: Scope) -> SimError | None:
        """Why this HTTP request is refused before it reaches a route, or None."""
        headers = _headers(scope)
        host = headers.get("host")
        if _over_a_socket(scope) and not (host and self.answers_to(host)):
            return SimError(
                403,
                "forbidden_host",
                f"this simulator does not answer to Host {host!r}: use localhost, an IP "
                "address or this machine's name (twinyard sims --allow-host NAME for others)",
                host=host,
            )
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, host):
            return SimError(
                403,
                "forbidden_origin",
                f"cross-origin requests are refused (Origin {origin!r}): web pages cannot "
                "drive the simulators",
                origin=origin,
            )
        path: str = scope.get("path", "")
        if not path.startswith(CONTROL_PREFIX) or scope.get("method", "GET").upper() in READS:
            return None
        if self.token is not None:
            presented = _presented_token(headers)
            if presented is None:
                return SimError(
                    401,
                    "token_required",
                    f"the control plane needs its token (printed by twinyard sims, given to "
                    f"a launched stack): Authorization: Bearer ${TOKEN_ENV} (or {TOKEN_HEADER})",
                )
            if not secrets.compare_digest(presented.encode(), self.token.encode()):
                return SimError(401, "invalid_token", "the control-plane token is wrong")
        return _json_refusal(headers)

    def answers_to(self, host_header: str) -> bool:
        """Whether a request's Host names this simulator (see the module's doc)."""
        return _answers_to(host_header, self.hosts)

    # -- webhook subscriptions ---------------------------------------------------------------
    def check_webhook_url(self, url: str) -> None:
        """Refuse (422, ``field: url``) a subscription URL this simulator must not call."""
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        if not host:
            raise unprocessable("validation_failed", "url must name a host", field="url")
        host = _bare(host)
        address = _address(host)
        if address is not None and (address.is_link_local or address.is_unspecified):
            raise unprocessable(
                "validation_failed",
                f"url must not point at {host}: link-local and unspecified addresses "
                "(169.254.0.0/16 holds cloud metadata) are never called",
                field="url",
                host=host,
            )
        if host in NEVER_CALLED:
            raise unprocessable(
                "validation_failed",
                f"url must not point at {host}: cloud metadata is never called",
                field="url",
                host=host,
            )
        if self.may_call(host, address):
            return
        raise unprocessable(
            "validation_failed",
            f"url must point at this machine (localhost, 127.0.0.0/8, ::1) or at a host "
            f"allowed in {WEBHOOK_ALLOW_ENV}: {host} is neither",
            field="url",
            host=host,
        )

    def may_call(self, host: str, address: IpAddress | None) -> bool:
        if host == "localhost" or host.endswith(".localhost"):
            return True
        if address is not None and address.is_loopback:
            return True
        if host in self.webhook_hosts:
            return True
        return address is not None and any(address in net for net in self._networks())

    def _networks(self) -> list[IpNetwork]:
        found = []
        for entry in self.webhook_hosts:
            if "/" in entry:
                try:
                    found.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    continue
        return found


OPEN = Guard()  # a simulator built in a test: no token; Host, Origin and JSON still checked


# -- helpers ---------------------------------------------------------------------------------
_READ = frozenset(
    {
        b"host",
        b"origin",
        b"authorization",
        TOKEN_HEADER.lower().encode(),
        b"content-type",
        b"content-length",
        b"transfer-encoding",
    }
)


def _headers(scope: Scope) -> dict[str, str]:
    """The headers the checks read, by name (ASGI names are lower case), the first of each."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        if name in _READ:
            found.setdefault(name.decode(), value.decode("latin-1"))
    return found


def _over_a_socket(scope: Scope) -> bool:
    """A server (uvicorn) names the socket's own address; an in-process client a made-up name."""
    server = scope.get("server")
    return bool(server) and _address(_bare(str(server[0]))) is not None


@functools.lru_cache(maxsize=4096)  # on every request: decided once per Host value
def _answers_to(host_header: str, allowed: frozenset[str]) -> bool:
    name = _bare(_without_port(host_header))
    if not name:
        return False
    if _address(name) is not None or name == "localhost" or name.endswith(".localhost"):
        return True
    return name in allowed or name in _this_machine()


def _same_origin(origin: str, host: str | None) -> bool:
    if not host:
        return False
    origin = origin.strip().lower()
    host = host.strip().lower()
    return origin in (f"http://{host}", f"https://{host}")


def _presented_token(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    token = headers.get(TOKEN_HEADER.lower(), "").strip()
    return token or None


def _json_refusal(headers: dict[str, str]) -> SimError | None:
    """415 for a body that is not declared JSON (no body and no content type is fine)."""
    content_type = headers.get("content-type")
    has_body = headers.get("content-length", "0").strip() not in ("", "0") or (
        "transfer-encoding" in headers
    )
    if content_type is None and not has_body:
        return None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == JSON_MEDIA:
        return None
    return SimError(
        415,
        "unsupported_media_type",
        f"the control plane takes JSON: send Content-Type: {JSON_MEDIA}"
        + (f" (not {media})" if media else ""),
        content_type=content_type,
    )


def _without_port(host_header: str) -> str:
    value = host_header.strip()
    if value.startswith("["):  # [::1]:7101
        return value[1 : value.find("]")] if "]" in value else value
    name, colon, port = value.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else value


def _bare(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@functools.lru_cache(maxsize=4096)  # on every request: the Host and the server's address
def _address(name: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    return address


@functools.cache
def _this_machine() -> frozenset[str]:
    """This machine's host name and its first label (``devbox.corp.example``, ``devbox``)."""
    name = _bare(socket.gethostname())
    return frozenset({name, name.split(".", 1)[0]} - {""})
