"""Typed keys for what the app holds."""

from __future__ import annotations

from aiohttp import web

from ..node import Node

NODE_KEY = web.AppKey("node", Node)
