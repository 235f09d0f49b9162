"""The reference stack: a real integration middleware between ERP, WMS, TMS and a carrier.

twinyard's demo system under test, run as its own process (``python -m reference_stack``),
configured by environment variables, talking to the simulators over HTTP only.
"""
