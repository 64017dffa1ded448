"""A client that runs inside a network namespace and takes orders from the test.

The test runs in the machine's own namespace and cannot reach the nodes' namespaces;
it starts this under ``ip netns exec NS python ns_client.py`` and sends one JSON order
per line on stdin; answers are JSON lines on stdout. Orders:

- ``{"op": "http", "method", "url", "body"?, "token"?}`` -> ``{"status", "body"}``
- ``{"op": "stream", "url", "body", "token"}`` -> one ``{"data": ...}`` per SSE data
  line as it arrives, then ``{"done": true, "status"}``
- ``{"op": "connect", "host", "port"}`` -> ``{"connected": bool, "error"}``
- ``{"op": "tls", "host", "port", "cert", "key"}`` -> ``{"ok": bool, "error"}``: a
  mutual-TLS handshake with that certificate, and one ping byte answered.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
from typing import Any
import urllib.error
import urllib.request


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _request(order: dict[str, Any]) -> urllib.request.Request:
    headers = {"Content-Type": "application/json"}
    if order.get("token"):
        headers["Authorization"] = f"Bearer {order['token']}"
    body = order.get("body")
    return urllib.request.Request(
        order["url"],
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
        method=order.get("method", "POST" if body is not None else "GET"),
    )


def http(order: dict[str, Any]) -> None:
    try:
        with urllib.request.urlopen(_request(order), timeout=order.get("timeout", 120)) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except OSError as err:
        _send({"status": None, "error": str(err)})
        return
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    _send({"status": status, "body": body})


def stream(order: dict[str, Any]) -> None:
    try:
        with urllib.request.urlopen(_request(order), timeout=order.get("timeout", 120)) as r:
            for line in r:
                text = line.decode().strip()
                if text.startswith("data: "):
                    payload = text[len("data: ") :]
                    _send({"data": payload if payload == "[DONE]" else json.loads(payload)})
            _send({"done": True, "status": r.status})
    except urllib.error.HTTPError as err:
        _send({"done": True, "status": err.code, "body": json.loads(err.read() or b"null")})
    except OSError as err:
        _send({"done": True, "status": None, "error": str(err)})


def connect(order: dict[str, Any]) -> None:
    try:
        with socket.create_connection((order["host"], order["port"]), timeout=3):
            _send({"connected": True, "error": None})
    except OSError as err:
        _send({"connected": False, "error": str(err)})


def tls(order: dict[str, Any]) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test checks the worker's refusal, not its cert
    ctx.load_cert_chain(order["cert"], order["key"])
    try:
        with (
            socket.create_connection((order["host"], order["port"]), timeout=5) as raw,
            ctx.wrap_socket(raw) as sock,
        ):
            sock.sendall(b"P")
            answer = sock.recv(4096)  # TLS 1.3: a refused client certificate shows here
            if not answer:
                raise ConnectionError("closed without an answer")
        _send({"ok": True, "error": None})
    except (OSError, ssl.SSLError) as err:
        _send({"ok": False, "error": str(err)})


def main() -> None:
    handlers = {"http": http, "stream": stream, "connect": connect, "tls": tls}
    for line in sys.stdin:
        order = json.loads(line)
        handlers[order["op"]](order)


if __name__ == "__main__":
    main()
