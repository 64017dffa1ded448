"""`python -m heatcompute_node`: run the node service."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from . import __version__
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
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        shutdown_timeout=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
