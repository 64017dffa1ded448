"""scripts/api_fuzz.py asks at interactive priority only: a background request waits for
heat by design, and with none wanted the fuzzer would hold each such case for its whole
timeout (a random seed did, once the field became nullable: its schema moved into an
anyOf the script did not look into)."""

from __future__ import annotations

import copy
import json

from heatcompute_node.api.request_schemas import CHAT_REQUEST, COMPLETION_REQUEST
from scripts.api_fuzz import _interactive_only


def test_no_generation_request_the_fuzzer_sees_may_ask_for_background() -> None:
    for request in (CHAT_REQUEST, COMPLETION_REQUEST):
        assert "background" in json.dumps(request)
        seen = copy.deepcopy(request)
        _interactive_only(seen)
        assert "background" not in json.dumps(seen)
        assert "interactive" in json.dumps(seen)
