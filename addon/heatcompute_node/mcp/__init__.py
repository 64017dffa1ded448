"""The MCP bridge for local data: read-only tools over files, SQLite databases and Home
Assistant, reached through scoped tokens. The transport lives in ``api/mcp.py``."""
