"""Vendor-style errors: every refusal a simulator makes is one of these, never a bare 500."""

from __future__ import annotations

from typing import Any


class SimError(Exception):
    """A refusal with an HTTP status and a JSON body shaped like a vendor's error."""

    def __init__(self, status: int, code: str, message: str, /, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def not_found(kind: str, ident: str) -> SimError:
    return SimError(404, "not_found", f"{kind} {ident} does not exist", id=ident)


def conflict(code: str, message: str, /, **details: Any) -> SimError:
    return SimError(409, code, message, **details)


def unprocessable(code: str, message: str, /, **details: Any) -> SimError:
    return SimError(422, code, message, **details)


def invalid_field(field_name: str, message: str) -> SimError:
    """422 ``validation_failed`` naming the one field at fault, as a body validation would."""
    return SimError(
        422, "validation_failed", message, errors=[{"field": field_name, "message": message}]
    )
