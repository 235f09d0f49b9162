"""Start the stack: `python -m tests.stacks.ministack` (from the twinyard checkout)."""

import logging

import uvicorn

from .app import build
from .config import load


def main() -> None:
    config = load()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    uvicorn.run(build(config), host="127.0.0.1", port=config.port, log_level="warning")


if __name__ == "__main__":
    main()
