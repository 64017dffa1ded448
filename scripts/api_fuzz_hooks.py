"""schemathesis hooks for scripts/api_fuzz.py: every case meets the same node.

`PATCH /api/config` is fuzzed like every operation (its answer checked against the
schema), but what a case switches there stays switched: with `serve_requests` false
every later chat or embeddings case is a 503 `not_serving`, which is the node doing as
told, not a fault. So after each call to it the node's config is put back to what it
was when the run began (`HEATCOMPUTE_FUZZ_CONFIG`, read by api_fuzz.py), and no case's
outcome depends on the cases before it: any seed gives a run whose failures are the
node's own.

Loaded by schemathesis (`hooks` in scripts/api_fuzz.toml) from the repository's root.
"""

from __future__ import annotations

import json
import os
from typing import Any
import urllib.request

import schemathesis

CONFIG_PATH = "/api/config"


def restore_config(base_url: str, token: str, config: dict[str, Any]) -> None:
    """PATCH the node's config back to `config` (its writable fields)."""
    request = urllib.request.Request(  # noqa: S310 - the fuzzed node on 127.0.0.1
        f"{base_url.rstrip('/')}{CONFIG_PATH}",
        data=json.dumps(config).encode(),
        method="PATCH",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - 127.0.0.1
        if response.status != 200:
            raise RuntimeError(f"restoring the node's config answered {response.status}")


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    if case.operation.path != CONFIG_PATH or case.method.upper() != "PATCH":
        return
    restore_config(
        os.environ["HEATCOMPUTE_FUZZ_URL"],
        os.environ["HEATCOMPUTE_FUZZ_TOKEN"],
        json.loads(os.environ["HEATCOMPUTE_FUZZ_CONFIG"]),
    )
