"""Parallel validation before a cutover: one world played against two stacks, and what each
did to the business compared by business key (``twinyard compare``, docs/compare.md)."""
