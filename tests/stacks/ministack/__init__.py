"""ministack: a small integration middleware between ERP, WMS, TMS and carrier.

Written only from twinyard's user-facing documentation (README, docs/, contracts/openapi/),
to check that twinyard works for a stack it has never seen. See tests/stacks/README.md.
"""
