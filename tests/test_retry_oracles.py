"""The retry oracles judge journals: a second goods issue, a call before its Retry-After."""

from __future__ import annotations

from typing import Any

from harness import oracles
from harness.oracles.view import SystemsView
from simulators.common.journal import Journal

EMPTY = {"erp": {}, "wms": {}, "carrier": {}, "tms": {}}


def _entry(journal: Journal, method: str, path: str, status: int, **extra: Any) -> dict:
    entry = journal.record(method=method, path=path, status=status, direction="in", **extra)
    return entry.to_dict()


def _judge(name: str, journals: dict[str, list[dict]]) -> oracles.OracleResult:
    return oracles.judge(SystemsView(EMPTY, journals), [name])[0]


def test_a_goods_issue_refused_as_already_issued_names_the_order():
    erp = Journal("erp")
    entries = [
        _entry(erp, "POST", "/orders/SO-1/goods-issue", 201, virtual_time=0),
        _entry(erp, "POST", "/orders/SO-2/goods-issue", 201, virtual_time=0),
        _entry(
            erp, "POST", "/orders/SO-2/goods-issue", 409, virtual_time=1, error="already_issued"
        ),
    ]
    result = _judge("goods_issue_posted_once", {"erp": entries})
    assert result.checked == 3
    assert [f.entity for f in result.findings] == ["SO-2"]


def test_a_goods_issue_refused_for_another_reason_is_not_a_second_posting():
    erp = Journal("erp")
    entries = [
        _entry(erp, "POST", "/orders/SO-1/goods-issue", 409, virtual_time=0, error="invalid_status")
    ]
    assert _judge("goods_issue_posted_once", {"erp": entries}).passed


def _refused_then_retried(after_s: float, query: str = "") -> list[dict]:
    carrier = Journal("carrier")
    refused = _entry(carrier, "POST", "/labels", 429, virtual_time=0, digest="d1", retry_after=2.0)
    retry = _entry(carrier, "POST", "/labels", 201, virtual_time=0, digest="d1", query=query)
    retry["wall_time"] = refused["wall_time"] + after_s
    return [refused, retry]


def test_a_retry_before_its_retry_after_fails_and_one_after_it_passes():
    early = _judge("retry_after_respected", {"carrier": _refused_then_retried(0.1)})
    assert early.checked == 1 and not early.passed
    assert "before the Retry-After" in early.findings[0].message
    on_time = _judge("retry_after_respected", {"carrier": _refused_then_retried(2.0)})
    assert on_time.checked == 1 and on_time.passed


def test_a_different_request_is_not_a_retry():
    # Same path and body, another query string: another order's lookup, not a retry.
    result = _judge("retry_after_respected", {"carrier": _refused_then_retried(0.1, "ref=2")})
    assert result.checked == 0 and result.passed
