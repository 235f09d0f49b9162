"""Each simulator against its published OpenAPI: no server errors, no response that breaks it.

Schemathesis generates requests from ``contracts/openapi/<system>.yaml`` and calls the
simulator in process; any 5xx, undocumented status or off-schema body fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

import simulators
from simulators.common.clock import ManualClock

SPECS = Path(__file__).resolve().parent.parent / "contracts" / "openapi"


# A request that fits the schema may still be refused for business reasons (an SKU the
# catalogue does not hold, an order in the wrong state): those statuses are documented.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "404", "409", "422"],
            }
        }
    }
)


def _schema(system: str) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_path(SPECS / f"{system}.yaml", config=CONFIG)


def _sim(system: str):
    sim = simulators.build(system, ManualClock())
    seed = getattr(sim.model, "seed_examples", None)
    if seed is not None:
        seed()  # entities the spec's examples name (SO-000001, A-100 ...) exist
    return sim


ERP, WMS, TMS, CARRIER = (_schema(s) for s in simulators.SYSTEMS)
APPS = {s: _sim(s) for s in simulators.SYSTEMS}
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


def _call(case, system: str) -> None:
    """Call and validate; a fault the fuzzer added through ``POST /_sim/faults`` is cleared
    at once, so later cases see the fault-free simulator the contract describes."""
    sim = APPS[system]
    try:
        case.call_and_validate(app=sim.app)
    finally:
        sim.faults.clear()


@pytest.mark.conformance
@ERP.parametrize()
@FUZZ
def test_erp_conforms(case):
    _call(case, "erp")


@pytest.mark.conformance
@WMS.parametrize()
@FUZZ
def test_wms_conforms(case):
    _call(case, "wms")


@pytest.mark.conformance
@TMS.parametrize()
@FUZZ
def test_tms_conforms(case):
    _call(case, "tms")


@pytest.mark.conformance
@CARRIER.parametrize()
@FUZZ
def test_carrier_conforms(case):
    _call(case, "carrier")
