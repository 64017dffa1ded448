"""`create_app(settings)`: the node's aiohttp application, wired and ready to run.

Tests build the app in-process with this factory; `__main__` runs the same app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from . import discovery, metrics
from .api import (
    control,
    fleet,
    index as index_api,
    jobs,
    kserve,
    mcp as mcp_api,
    mcp_tokens,
    onnx_service,
    openai,
    openapi,
    read_text,
)
from .api.auth import TOKEN_KEY, auth_middleware
from .api.errors import error_middleware
from .api.keys import NODE_KEY
from .api.openai_service import MANAGER_KEY
from .api.serving import serving_middleware
from .hardware.base import HardwareSource
from .heat.job_runner import JobRunner
from .heat.llm_runner import LlmJobRunner
from .heat.onnx_runner import OnnxJobRunner
from .heat.runners import RunnerByKind
from .ingress import routes as dashboard
from .ingress.access import INGRESS_ACCESS_KEY, IngressAccess, ingress_middleware
from .mcp import status_wiring as mcp_status
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
            ingress_middleware,
            auth_middleware,
            serving_middleware,
            fleet.split_model_middleware,
        ],
        client_max_size=MAX_REQUEST_BYTES,
    )
    app[NODE_KEY] = node
    app[TOKEN_KEY] = node.token

    control.setup(app)
    openai.setup(app)
    metrics.setup(app, node)
    openapi.setup(app)
    dashboard.setup(app)
    if settings.ingress_port:
        app[INGRESS_ACCESS_KEY] = IngressAccess(
            port=settings.ingress_port, allowed=frozenset(settings.ingress_allowed)
        )
    # ONNX models (docs/onnx.md): the engine, /v2 (KServe v2) and /api/read-text.
    onnx_service.setup_service(app)
    kserve.setup(app)
    read_text.setup(app)
    # The document index of the shared folders (docs/index.md); it reads images through
    # the text reader above, and the bridge's search_documents searches it.
    documents = index_api.setup(app)
    # The MCP bridge for local data (issue 12): its routes, token API and figures.
    bridge = mcp_api.setup(app, settings, node.token, documents)
    mcp_tokens.setup(app)
    mcp_status.wire(node, bridge.stats)

    app.cleanup_ctx.append(_node_lifecycle)
    # The fleet (docs/fleet.md): after the node starts (its status and samples), and
    # after the model manager (a lead looks its model up there).
    fleet.setup(app)
    # After the node's life cycle: the heat service starts once the node runs and
    # stops before it.
    jobs.setup(app, job_runner or _job_runner(app))
    if settings.zeroconf:
        app.cleanup_ctx.append(_zeroconf_lifecycle)
    return app


def _job_runner(app: web.Application) -> JobRunner:
    """LLM jobs on llama.cpp; read_text jobs (and the governor's knobs) on the ONNX engine."""
    onnx = OnnxJobRunner(app[read_text.READER_KEY])
    return RunnerByKind(
        LlmJobRunner(app[MANAGER_KEY]), {"read_text": onnx}, extra_engines=(onnx.onnx,)
    )


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
