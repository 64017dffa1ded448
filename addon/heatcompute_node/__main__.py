"""`python -m heatcompute_node`: run the node service.

The process owns its event loop (rather than aiohttp's run_app) so that it can act
once the port listens (announce itself to Home Assistant in the add-on) and undo that
before it stops. SIGTERM (``docker stop``, the Supervisor) and SIGINT stop it cleanly:
discovery withdrawn, engines closed, the energy counter flushed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import sys

from aiohttp import web

from . import __version__, priorities, supervisor
from .api.keys import NODE_KEY
from .app import create_app
from .settings import Settings, SettingsError, load_settings

_LOGGER = logging.getLogger("heatcompute_node")
_ANNOUNCE_RETRY_S = (1.0, 5.0, 30.0, 120.0)
SHUTDOWN_TIMEOUT_S = 5.0


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except SettingsError as err:
        # One line and an exit: the Supervisor's log shows what to fix, no traceback.
        print(f"heatcompute_node: invalid configuration: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The loop serves every request and stream: it gets a core first when it wakes
    # (priorities.py); the threads it starts go back to the process's own priority.
    priorities.event_loop_thread()
    return asyncio.run(serve(settings))


async def serve(settings: Settings) -> int:
    """Run the node until SIGTERM or SIGINT; returns the exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(
            thread_name_prefix="heatcompute-worker", initializer=priorities.worker_thread
        )
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    addon = supervisor.AddonEnvironment.detect()
    bundled = supervisor.bundled_models_dir()
    linked = supervisor.link_bundled_models(settings.data_dir / "models", bundled)
    linked += supervisor.link_bundled_onnx(settings.onnx_repository_dir, bundled)
    if linked:
        _LOGGER.info("models that came with the image: %s", ", ".join(p.name for p in linked))

    runner = web.AppRunner(
        create_app(settings), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    try:
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()
        if settings.ingress_port:
            # The dashboard's port: the same app, answering only the ingress proxy.
            await web.TCPSite(runner, settings.host, settings.ingress_port).start()
    except Exception as err:  # noqa: BLE001 - reported in one line, then exit
        _LOGGER.error("cannot start: %s", err, exc_info=_LOGGER.isEnabledFor(logging.DEBUG))
        await runner.cleanup()
        return 1
    _LOGGER.info(
        "heatcompute node %s on http://%s:%d, data in %s",
        __version__,
        settings.host,
        settings.port,
        settings.data_dir,
    )

    config = supervisor.discovery_config(port=settings.port, token=runner.app[NODE_KEY].token)
    async with supervisor.announced(addon, supervisor.SERVICE, config, _ANNOUNCE_RETRY_S):
        await stop.wait()
        _LOGGER.info("stopping")
    await runner.cleanup()
    _LOGGER.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
