"""The bridge assembled from the node's settings: tools, tokens, guard, figures."""

from __future__ import annotations

from dataclasses import dataclass
import logging

from .. import __version__
from ..index.document_index import DocumentIndex
from ..settings import Settings
from .documents import DocumentTools
from .files import FileTools
from .guard import Guard
from .ha_api import HomeAssistantApi
from .homeassistant import HomeAssistantTools
from .recorder_db import RecorderDatabase
from .server import McpServer
from .sqlite import DatabaseTools
from .stats import McpStats
from .tokens import SCOPES, TokenSpec, TokenStore, TrustedNetworks
from .tools import Limits

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bridge:
    server: McpServer
    guard: Guard
    tokens: TokenStore
    stats: McpStats
    ha_api: HomeAssistantApi | None

    async def close(self) -> None:
        if self.ha_api is not None:
            await self.ha_api.close()


def build_bridge(
    settings: Settings, node_token: str, documents: DocumentIndex | None = None
) -> Bridge:
    limits = Limits(call_timeout_s=settings.mcp_call_timeout_s)
    stats = McpStats()
    tokens = TokenStore(
        node_token, [TokenSpec.parse(spec) for spec in settings.mcp_tokens], settings.data_dir
    )
    guard = Guard.build(
        tokens,
        TrustedNetworks.parse(settings.mcp_trusted_networks, SCOPES),
        hosts=settings.mcp_allowed_hosts,
        origins=settings.mcp_allowed_origins,
    )
    ha_api = HomeAssistantApi.from_settings(
        settings.mcp_ha_url, settings.mcp_ha_token, settings.mcp_call_timeout_s
    )
    recorder = None
    if settings.mcp_recorder_db is not None:
        if settings.mcp_recorder_db.is_file():
            recorder = RecorderDatabase(settings.mcp_recorder_db)
        else:
            # The add-on's default path, on a Home Assistant whose recorder is MariaDB.
            _LOGGER.warning(
                "MCP: no recorder database at %s; history and statistics use the API",
                settings.mcp_recorder_db,
            )
    # Only tools that can work are offered: an agent never picks one that can't.
    tools = [
        *(FileTools(settings.mcp_folders, limits).tools() if settings.mcp_folders else []),
        *(DocumentTools(documents).tools() if documents is not None else []),
        *(DatabaseTools(settings.mcp_databases, limits).tools() if settings.mcp_databases else []),
        *HomeAssistantTools(ha_api, recorder, limits).tools(),
    ]
    server = McpServer(tools, limits, stats, version=__version__)
    return Bridge(server=server, guard=guard, tokens=tokens, stats=stats, ha_api=ha_api)
