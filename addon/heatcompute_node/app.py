"""`create_app(settings)`: the node's aiohttp application, wired and ready to run.

Tests build the app in-process with this factory; `__main__` runs the same app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from . import discovery, metrics
from .api import control, jobs, openai, openapi
from .api.auth import TOKEN_KEY, auth_middleware
from .api.errors import error_middleware
from .api.keys import NODE_KEY
from .api.openai_service import MANAGER_KEY
from .api.serving import serving_middleware
from .hardware.base import HardwareSource
from .heat.job_runner import JobRunner
from .heat.llm_runner import LlmJobRunner
from .node import Node
from .settings import Settings

# Large enough for an embeddings batch or a long chat history, small enough that a
# client can't exhaust memory with one request.
MAX_REQUEST_BYTES = 16 * 1024 * 1024


def create_app(
    settings: Settings,
    *,
    hardware: HardwareSource | None = None,
    job_runner: JobRunner | None = None,
) -> web.Application:
    """Build the node's app. `hardware` overrides detection (tests pass a twin);
    `job_runner` the engine jobs run on (tests pass a fake)."""
    node = Node(settings, hardware=hardware)
    app = web.Application(
        middlewares=[
            metrics.request_metrics_middleware,
            error_middleware,
            auth_middleware,
            serving_middleware,
        ],
        client_max_size=MAX_REQUEST_BYTES,
    )
    app[NODE_KEY] = node
    app[TOKEN_KEY] = node.token

    control.setup(app)
    openai.setup(app)
    metrics.setup(app, node)
    openapi.setup(app)

    app.cleanup_ctx.append(_node_lifecycle)
    # After the node's life cycle: the heat service starts once the node runs and
    # stops before it.
    jobs.setup(app, job_runner or LlmJobRunner(app[MANAGER_KEY]))
    if settings.zeroconf:
        app.cleanup_ctx.append(_zeroconf_lifecycle)
    return app


async def _node_lifecycle(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE_KEY]
    await node.start()
    yield
    await node.stop()


async def _zeroconf_lifecycle(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE_KEY]
    settings = node.settings
    advertiser = discovery.Advertiser(
        discovery.service_info(
            node_id=node.node_id,
            name=settings.node_name,
            port=settings.port,
            addresses=discovery.advertised_addresses(settings.host),
        )
    )
    await advertiser.start()
    yield
    await advertiser.stop()
