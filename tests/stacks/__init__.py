"""Integration stacks written only from twinyard's user documentation, as test subjects."""
