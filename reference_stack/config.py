"""Configuration from environment variables only, as the harness (or a user) launches the stack.

A stack that is misconfigured must say so in one line and stop with exit code 2, before it
binds a port or subscribes anywhere. The webhook secret never comes from the command line
(anyone on the machine reads that in ``ps``): ``TWINYARD_WEBHOOK_SECRET``, or a file named by
``TWINYARD_WEBHOOK_SECRET_FILE``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from reference_stack import carrier_versions
from reference_stack import defects as known_defects
from reference_stack.clients import IN_DOUBT_S
from simulators.common import signing

T = TypeVar("T", int, float)

SYSTEMS = ("erp", "wms", "tms", "carrier")
URL_VARS = {system: f"TWINYARD_{system.upper()}_URL" for system in SYSTEMS}
SECRET_VAR = "TWINYARD_WEBHOOK_SECRET"
SECRET_FILE_VAR = "TWINYARD_WEBHOOK_SECRET_FILE"
SIGNING_VAR = "REFSTACK_WEBHOOK_SIGNING"
DEFECTS_VAR = "REFSTACK_DEFECTS"
CARRIER_API_VAR = "REFSTACK_CARRIER_API"
RETENTION_S = 7 * 86_400.0  # a week: see reference_stack.retention


class ConfigError(Exception):
    """A variable is missing or malformed; the message is the one line the user sees."""


@dataclass(frozen=True, slots=True)
class Config:
    vendor_urls: dict[str, str]  # system -> base URL without a trailing slash
    webhook_secret: str = field(repr=False)  # never in a log line or a traceback
    port: int = 8700
    db_path: Path | None = None  # None: a fresh file in a temporary directory
    retry_base_s: float = 0.2
    retry_max_s: float = 5.0
    # How long a call our timeout cut off may still land (the vendors' gateways give up at
    # 30 s): its retry, or the look before it, waits that long after it was sent.
    in_doubt_s: float = IN_DOUBT_S
    max_attempts: int = 8
    workers: int = 16
    call_jitter_ms: float = 0.0  # a random delay before each vendor call (timing perturbation)
    defects: frozenset[str] = frozenset()  # known bugs switched on (reference_stack.defects)
    # How the simulators sign what they send it: "twinyard" or "standard-webhooks" (a whsec_
    # secret), asked for when it subscribes.
    webhook_signing: str = signing.TWINYARD
    # Finished work (processed events, done jobs) is forgotten this long after it finished:
    # the dedup window, longer than vendors redeliver for (reference_stack.retention).
    retention_s: float = RETENTION_S
    prune_every_s: float = 60.0  # how often old finished work is looked for
    prune_batch: int = 100  # rows per table per transaction: about a millisecond each
    # The carrier API version the stack speaks (reference_stack.carrier_versions): v1, v1.1
    # (spoken as v1: additions only) or v2. Only the carrier boundary changes with it.
    carrier_api: str = carrier_versions.DEFAULT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        missing = [var for var in URL_VARS.values() if not env.get(var)]
        if not env.get(SECRET_VAR) and not env.get(SECRET_FILE_VAR):
            missing.append(SECRET_VAR)  # or SECRET_FILE_VAR (docs/choreography.md)
        if missing:
            raise ConfigError(f"missing environment variable(s): {', '.join(missing)}")
        urls = {system: _url(env, var) for system, var in URL_VARS.items()}
        db = env.get("REFSTACK_DB")
        scheme = env.get(SIGNING_VAR, "").strip() or signing.TWINYARD
        secret = _secret(env)
        try:
            signing.check_secret(scheme, secret)
        except ValueError as exc:
            var = SIGNING_VAR if scheme not in signing.SCHEMES else _secret_origin(env)
            raise ConfigError(f"{var}: {exc}") from None
        return cls(
            vendor_urls=urls,
            webhook_secret=secret,
            webhook_signing=scheme,
            port=_number(env, "TWINYARD_STACK_PORT", 8700, int, low=1, high=65535),
            db_path=Path(db) if db else None,
            retry_base_s=_number(env, "REFSTACK_RETRY_BASE_S", 0.2, float, low=0.0),
            retry_max_s=_number(env, "REFSTACK_RETRY_MAX_S", 5.0, float, low=0.0),
            in_doubt_s=_number(env, "REFSTACK_IN_DOUBT_S", IN_DOUBT_S, float, low=0.0),
            max_attempts=_number(env, "REFSTACK_MAX_ATTEMPTS", 8, int, low=1),
            workers=_number(env, "REFSTACK_WORKERS", 16, int, low=1),
            call_jitter_ms=_number(env, "REFSTACK_CALL_JITTER_MS", 0.0, float, low=0.0),
            defects=_defects(env),
            retention_s=_number(env, "REFSTACK_RETENTION_S", RETENTION_S, float, low=1.0),
            prune_every_s=_number(env, "REFSTACK_PRUNE_EVERY_S", 60.0, float, low=0.01),
            prune_batch=_number(env, "REFSTACK_PRUNE_BATCH", 100, int, low=1),
            carrier_api=_choice(
                env, CARRIER_API_VAR, carrier_versions.VERSIONS, carrier_versions.DEFAULT
            ),
        )

    def database(self) -> Path:
        """The SQLite file: REFSTACK_DB, or a new one per start (a demo stack keeps nothing)."""
        if self.db_path is not None:
            return self.db_path
        return Path(tempfile.mkdtemp(prefix="refstack-")) / "refstack.db"


def _secret(env: Mapping[str, str]) -> str:
    """The variable's value; else the file's. A launched stack gets the variable from the
    harness (the run's secret), whatever file its environment also names, so it wins."""
    if env.get(SECRET_VAR):
        return env[SECRET_VAR]
    try:
        return signing.read_secret_file(env[SECRET_FILE_VAR])
    except ValueError as exc:
        raise ConfigError(f"{SECRET_FILE_VAR}: {exc}") from None


def _secret_origin(env: Mapping[str, str]) -> str:
    return SECRET_VAR if env.get(SECRET_VAR) else SECRET_FILE_VAR


def _url(env: Mapping[str, str], var: str) -> str:
    value = env[var].strip()
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{var} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _defects(env: Mapping[str, str]) -> frozenset[str]:
    try:
        return known_defects.parse(env.get(DEFECTS_VAR, ""))
    except ValueError as exc:
        raise ConfigError(f"{DEFECTS_VAR}: {exc}") from None


def _choice(env: Mapping[str, str], var: str, allowed: tuple[str, ...], default: str) -> str:
    """One of a few words; unset or blank is the default. Case matters, as in a scenario's
    ``carrier.api_version``: the same spelling in both places."""
    raw = env.get(var)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip()
    if value not in allowed:
        raise ConfigError(f"{var} must be one of {', '.join(allowed)}, got {raw!r}")
    return value


def _number(
    env: Mapping[str, str],
    var: str,
    default: T,
    kind: type[T],
    *,
    low: T,
    high: T | None = None,
) -> T:
    raw = env.get(var)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw.strip())
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{var} must be {what}, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{var} must be {bounds}, got {raw!r}")
    return value
