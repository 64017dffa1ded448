"""The document index on the node's API (docs/index.md): its state, search, "index now".

``GET /api/index`` files, passages, backlog, last run and unreadable files;
``POST /api/index/search`` passages closest in meaning to a question;
``POST /api/index/run`` one batch of indexing now (the heat planner runs the rest).
Also the index's life cycle and its place among the node's status sources.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ..index.document_index import MAX_SEARCH_LIMIT, DocumentIndex
from ..index.embed import IndexUnavailableError, LlmEmbedder
from .errors import ApiError, read_json_object, reject_unknown_fields
from .keys import NODE_KEY
from .openai_service import MANAGER_KEY
from .openapi import describe
from .read_text import READER_KEY
from .serving import interactive

INDEX_KEY = web.AppKey("document_index", DocumentIndex)
DEFAULT_SEARCH_LIMIT = 5
DEFAULT_RUN_CHUNKS = 256
MAX_RUN_CHUNKS = 100_000
MAX_QUERY_CHARS = 2000

_TIME = {"type": ["string", "null"], "format": "date-time"}
BACKLOG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "files_pending": {"type": "integer", "description": "new or changed files"},
        "files_removed": {"type": "integer", "description": "gone files still to drop"},
        "bytes_pending": {"type": "integer"},
        "chunks_estimate": {"type": "integer", "description": "passages still to embed"},
        "oldest_change": _TIME,
        "scanned_at": _TIME,
        "deadline": {**_TIME, "description": "oldest change + the freshness setting"},
    },
}
PROGRESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "at": _TIME,
        "files_indexed": {"type": "integer"},
        "files_reused": {"type": "integer", "description": "moved/copied: nothing embedded"},
        "files_removed": {"type": "integer"},
        "files_failed": {"type": "integer"},
        "chunks_embedded": {"type": "integer"},
        "bytes_read": {"type": "integer"},
        "seconds": {"type": "number"},
        "backlog": BACKLOG_SCHEMA,
    },
}
PASSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "file": {"type": "string"},
        "chunk": {"type": "integer", "description": "the passage's number in its file, from 0"},
        "page": {"type": ["integer", "null"], "description": "PDF page, from 1"},
        "line": {"type": "integer", "description": "first line, from 1"},
        "text": {"type": "string"},
        "score": {"type": "number", "description": "cosine similarity, -1..1"},
    },
}
SEARCH_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["query"],
    "additionalProperties": False,
    "properties": {
        # Not only white space: the node refuses a query with nothing to search for
        # (found by a random fuzzing seed: "\r" was schema-valid and refused).
        "query": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_QUERY_CHARS,
            "pattern": "\\S",
        },
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_LIMIT},
    },
}
RUN_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"max_chunks": {"type": "integer", "minimum": 1, "maximum": MAX_RUN_CHUNKS}},
}


def _index(request: web.Request) -> DocumentIndex:
    index = request.app.get(INDEX_KEY)
    if index is None:
        raise ApiError(
            503,
            "the document index is off: share a folder (mcp_folders) and keep index_enabled on",
            code="index_disabled",
        )
    return index


def _unavailable(err: IndexUnavailableError) -> ApiError:
    return ApiError(503, f"no embedding model for the index: {err}", code="model_not_available")


@describe(
    "The document index: files, passages, backlog, last run, unreadable files",
    tag="index",
    response={
        "type": "object",
        "properties": {
            "enabled": {"type": "boolean"},
            "folders": {"type": "array", "items": {"type": "string"}},
            "model": {"type": ["string", "null"]},
            "files": {"type": "integer"},
            "chunks": {"type": "integer"},
            "backlog": BACKLOG_SCHEMA,
            "last_run": {"anyOf": [PROGRESS_SCHEMA, {"type": "null"}]},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string"},
                        "error": {"type": "string"},
                        "at": _TIME,
                    },
                },
            },
        },
    },
)
async def get_index(request: web.Request) -> web.Response:
    index = request.app.get(INDEX_KEY)
    settings = request.app[NODE_KEY].settings
    freshness_s = settings.index_freshness_h * 3600
    if index is None:
        from ..index.backlog import EMPTY_BACKLOG

        return web.json_response(
            {
                "enabled": False,
                "folders": [str(folder) for folder in settings.mcp_folders],
                "model": None,
                "files": 0,
                "chunks": 0,
                "backlog": EMPTY_BACKLOG.as_json(freshness_s),
                "last_run": None,
                "errors": [],
            }
        )
    snapshot = index.snapshot()
    return web.json_response(
        {
            "enabled": True,
            "folders": list(index.folders.roots),
            "model": index.model,
            "files": snapshot.files,
            "chunks": snapshot.chunks,
            "backlog": snapshot.backlog.as_json(freshness_s),
            "last_run": None if snapshot.last_run is None else snapshot.last_run.as_json(),
            "errors": [error.as_json() for error in index.errors],
        }
    )


@describe(
    "Search the shared folders by meaning: the passages closest to a question",
    tag="index",
    request=SEARCH_REQUEST,
    response={
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "passages": {"type": "array", "items": PASSAGE_SCHEMA},
        },
    },
    errors=(400, 415, 503),
)
@interactive
async def search(request: web.Request) -> web.Response:
    index = _index(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, {"query", "limit"})
    query, limit = body.get("query"), body.get("limit", DEFAULT_SEARCH_LIMIT)
    if not isinstance(query, str) or not query.strip():
        raise ApiError(400, "query must be a non-empty string", code="invalid_value", param="query")
    if len(query) > MAX_QUERY_CHARS:
        raise ApiError(
            400,
            f"query is longer than {MAX_QUERY_CHARS} characters",
            code="invalid_value",
            param="query",
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ApiError(
            400,
            f"limit must be a whole number 1-{MAX_SEARCH_LIMIT}",
            code="invalid_value",
            param="limit",
        )
    try:
        passages = await index.search(query, limit)
    except IndexUnavailableError as err:
        raise _unavailable(err) from err
    return web.json_response(
        {"query": query, "passages": [passage.as_json() for passage in passages]}
    )


@describe(
    "Index now: walk the folders, then one batch of reading and embedding "
    "(the heat planner runs the rest)",
    tag="index",
    request=RUN_REQUEST,
    response=PROGRESS_SCHEMA,
    errors=(400, 415, 503),
)
async def run(request: web.Request) -> web.Response:
    index = _index(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, {"max_chunks"})
    max_chunks = body.get("max_chunks", DEFAULT_RUN_CHUNKS)
    if (
        isinstance(max_chunks, bool)
        or not isinstance(max_chunks, int)
        or not 1 <= max_chunks <= MAX_RUN_CHUNKS
    ):
        raise ApiError(
            400,
            f"max_chunks must be a whole number 1-{MAX_RUN_CHUNKS}",
            code="invalid_value",
            param="max_chunks",
        )
    try:
        # A person asks after adding files: walk first, whatever the rescan interval.
        await index.scan()
        progress = await index.index_some(max_chunks, background=False)
    except IndexUnavailableError as err:
        raise _unavailable(err) from err
    freshness_s = request.app[NODE_KEY].settings.index_freshness_h * 3600
    return web.json_response(progress.as_json(freshness_s))


def setup(app: web.Application) -> DocumentIndex | None:
    """The index when it is on (a folder shared, index_enabled); the routes always."""
    app.router.add_get("/api/index", get_index)
    app.router.add_post("/api/index/search", search)
    app.router.add_post("/api/index/run", run)
    settings = app[NODE_KEY].settings
    if not settings.index_on:
        return None
    index = DocumentIndex(
        settings.mcp_folders,
        settings.index_database_path,
        LlmEmbedder(app[MANAGER_KEY], settings.index_model),
        app[READER_KEY],
        rescan_s=settings.index_rescan_s,
        freshness_s=settings.index_freshness_h * 3600,
    )
    app[INDEX_KEY] = index
    app.cleanup_ctx.append(_lifecycle)
    return index


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    index, node = app[INDEX_KEY], app[NODE_KEY]
    await index.start()
    node.add_status_source(index)
    yield
    node.remove_status_source(index)
    await index.close()
