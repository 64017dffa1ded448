"""`python -m heatcompute_node`: run the node service."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys

from aiohttp import web

from . import __version__, priorities
from .app import create_app
from .settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except SettingsError as err:
        print(f"heatcompute_node: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger(__name__).info(
        "heatcompute node %s on http://%s:%d, data in %s",
        __version__,
        settings.host,
        settings.port,
        settings.data_dir,
    )
    # The loop serves every request and stream: it gets a core first when it wakes
    # (priorities.py); the threads it starts go back to the process's own priority.
    priorities.event_loop_thread()
    loop = asyncio.new_event_loop()
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(
            thread_name_prefix="heatcompute-worker", initializer=priorities.worker_thread
        )
    )
    web.run_app(
        create_app(settings),
        loop=loop,
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        shutdown_timeout=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
