"""``python -m tests.stacks.pollstack``."""

from .app import main

main()
