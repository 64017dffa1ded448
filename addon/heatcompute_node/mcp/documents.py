"""``search_documents``: the shared folders searched by meaning, for assistants.

The passages come from the node's document index (docs/index.md), which reads only the
folders the file tools may read, so the tool belongs to the same ``files`` scope.
"""

from __future__ import annotations

from typing import Any

from ..index.document_index import DocumentIndex
from ..index.embed import IndexUnavailableError
from .tools import Arguments, Tool, ToolError, integer, schema, string

MAX_PASSAGES = 20
DEFAULT_PASSAGES = 5


class DocumentTools:
    def __init__(self, index: DocumentIndex) -> None:
        self.index = index

    def tools(self) -> list[Tool]:
        return [
            Tool(
                name="search_documents",
                title="Search documents",
                description=(
                    "Find passages in the shared documents (notes, letters, manuals, PDFs, "
                    "scanned images) by meaning, not only by words: ask in plain language, "
                    "e.g. 'when does the boiler warranty end'. Returns the best passages with "
                    "their file, page and line; read more of a file with read_text_file."
                ),
                scope="files",
                input_schema=schema(
                    ("query",),
                    query=string("what to look for, in plain language"),
                    limit=integer(
                        f"how many passages (default {DEFAULT_PASSAGES})",
                        minimum=1,
                        maximum=MAX_PASSAGES,
                    ),
                ),
                run=self.search,
                available=lambda: self.index.model is not None,
            )
        ]

    async def search(self, arguments: Arguments) -> dict[str, Any]:
        query: str = arguments["query"]
        if not query.strip():
            raise ToolError("the query is empty; say what to look for")
        try:
            passages = await self.index.search(query, arguments.get("limit", DEFAULT_PASSAGES))
        except IndexUnavailableError as err:
            raise ToolError(f"the document index can't search now: {err}") from err
        backlog = self.index.backlog()
        return {
            "query": query,
            "passages": [passage.as_json() for passage in passages],
            "files_not_yet_indexed": backlog.files_pending,
        }
