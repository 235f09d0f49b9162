"""What a vendor's broken sender puts on the wire: a signed delivery that is not an event.

The ``garbled`` event fault sends one of these just ahead of the genuine delivery, under the
same event id (``X-Twinyard-Event-Id``, ``webhook-id``), correctly signed over the bytes it
carries. A receiver must refuse it (the contract's ``400 malformed_event``; a signature header
sent twice: 400 or 401) without letting it spoil the genuine delivery that follows: a stack that
records an event id before it has read a valid envelope takes the genuine event for a duplicate
and drops it.
"""

from __future__ import annotations

import orjson

from simulators.common.compact import compact


def garble(form: str, body: bytes) -> bytes:
    """The bytes of a garbled copy of the envelope ``body`` (``headers_twice``: the same bytes,
    the signature headers are what is wrong)."""
    if form == "truncated":  # cut off mid-write: not JSON
        return body[: len(body) // 2]
    if form == "headers_twice":
        return body
    envelope = orjson.loads(body)
    if form == "not_object":  # a batch of one, sent to a receiver of single events
        return compact(orjson.dumps([envelope]))
    if form == "no_id":
        envelope.pop("id", None)
    elif form == "double_encoded":  # data serialised twice: a JSON string, not an object
        envelope["data"] = orjson.dumps(envelope["data"]).decode()
    else:
        raise ValueError(f"unknown garble {form!r}")
    return compact(orjson.dumps(envelope))
