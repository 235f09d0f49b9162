"""Incident capsules: scripted days made from evidence (import, record) or cut down from a
failing day (shrink). docs/capsules.md and docs/shrink.md say how each is used."""
