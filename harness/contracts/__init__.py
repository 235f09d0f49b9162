"""Contracts for vendor upgrades: comparing what a vendor publishes (OpenAPI) across versions."""
