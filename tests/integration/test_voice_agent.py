"""The agent's behaviour with scripted model answers (a real node underneath, no model).

The model's side is replaced by `ScriptedModel`, so each test decides what the model
says: broken tool calls, a node that is full, a prompt that does not fit. Everything
else is real: Home Assistant's chat log, Assist's tools, the light they switch, the
translations the errors are spoken with.
"""

from __future__ import annotations

from collections.abc import Iterator
import copy
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import llm
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)

from custom_components.heatcompute.chat_client import (
    ChatReply,
    HeatcomputeContextLengthError,
    ModelInfo,
    ToolCall,
)
from custom_components.heatcompute.client import (
    HeatcomputeClient,
    HeatcomputeError,
    HeatcomputeOverloadedError,
    HeatcomputeUnavailableError,
)
from custom_components.heatcompute.const import (
    CONF_ASSISTANT,
    CONF_LLM_API,
    CONF_MAX_HISTORY,
    CONF_MODEL,
    CONF_TOOL_MODE,
    MAX_TOOL_ITERATIONS,
    TOOL_MODE_REQUIRED,
)

from .conftest import RunningNode
from .voice import LIGHT, ask, light_state, setup_agent, setup_home, speech

MODEL = "tiny"


def answer(text: str) -> ChatReply:
    return ChatReply(content=text, tool_calls=(), finish_reason="stop", prompt_tokens=None)


def call(name: str, arguments: str, call_id: str = "call_1") -> ChatReply:
    return ChatReply(
        content="",
        tool_calls=(ToolCall(id=call_id, name=name, arguments=arguments),),
        finish_reason="tool_calls",
    )


class ScriptedModel:
    """Plays the model: answers (or raises) in order, and keeps every request body."""

    def __init__(self, context_length: int | None = 8192) -> None:
        self.script: list[ChatReply | HeatcomputeError] = []
        self.bodies: list[dict[str, Any]] = []
        self.context_length = context_length

    async def chat(self, client: HeatcomputeClient, body: dict[str, Any]) -> ChatReply:
        self.bodies.append(copy.deepcopy(body))
        step = self.script.pop(0) if self.script else answer("OK.")
        if isinstance(step, HeatcomputeError):
            raise step
        return step

    async def list_models(self, client: HeatcomputeClient) -> list[ModelInfo]:
        return [ModelInfo(id=MODEL, context_length=self.context_length)]


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    scripted = ScriptedModel()
    with (
        patch("custom_components.heatcompute.conversation.chat", scripted.chat),
        patch("custom_components.heatcompute.conversation.list_models", scripted.list_models),
    ):
        yield scripted


ASSIST = {CONF_LLM_API: llm.LLM_API_ASSIST}


async def test_the_prompt_prefix_is_the_same_every_turn(
    hass: HomeAssistant, node: RunningNode, model: ScriptedModel
) -> None:
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, node, **ASSIST)
    model.script = [answer("Hello."), answer("Fine.")]

    first = await ask(hass, agent_id, "Hi")
    await ask(hass, agent_id, "How are you?", conversation_id=first["conversation_id"])

    turn_1, turn_2 = model.bodies
    # System prompt and tools byte for byte the same: the node reuses their KV cells.
    assert turn_1["messages"][0] == turn_2["messages"][0]
    assert turn_1["tools"] == turn_2["tools"]
    assert "Current time" not in turn_1["messages"][0]["content"]
    assert "Kitchen light" in turn_1["messages"][0]["content"]  # Assist's device list
    # The time travels with the newest question; the history keeps the words as said.
    assert turn_1["messages"][1]["content"].startswith("Hi\n\n(Current time is ")
    assert [m["content"] for m in turn_2["messages"][1:3]] == ["Hi", "Hello."]
    assert turn_2["messages"][3]["content"].startswith("How are you?\n\n(Current time is ")


async def test_broken_tool_arguments_are_repaired(
    hass: HomeAssistant, node: RunningNode, model: ScriptedModel
) -> None:
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, node, **ASSIST)
    # Python literal, wrong case in the tool name, empty slots, a string for a list.
    model.script = [
        call("hassturnon", "{'name': 'Kitchen light', 'area': '', 'domain': 'light'}"),
        answer("The light is on."),
    ]

    result = await ask(hass, agent_id, "Light on, please")

    assert light_state(hass) == "on"
    assert speech(result) == "The light is on."
    tool_turn = model.bodies[1]["messages"]
    assert tool_turn[-2]["tool_calls"][0]["function"] == {
        "name": "HassTurnOn",
        "arguments": '{"name": "Kitchen light", "domain": ["light"]}',
    }


async def test_hopeless_arguments_get_an_error_turn(
    hass: HomeAssistant, node: RunningNode, model: ScriptedModel
) -> None:
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, node, **ASSIST)
    model.script = [
        call("HassTurnOn", "turn on the kitchen light"),
        call("HassTurnOn", '{"name": "Kitchen light"}', "call_2"),
        answer("Done."),
    ]

    result = await ask(hass, agent_id, "Kitchen light on")

    assert speech(result) == "Done."
    assert light_state(hass) == "on"
    # The model saw what was wrong with its first try...
    correction = model.bodies[1]["messages"][-1]
    assert correction["role"] == "tool"
    assert "not valid JSON" in correction["content"]
    # ...but the chat log (the conversation's history) only has the call that worked.
    history = model.bodies[2]["messages"]
    calls = [m for m in history if m.get("tool_calls")]
    assert [c["tool_calls"][0]["id"] for c in calls] == ["call_2"]


async def test_the_tool_loop_is_capped(
    hass: HomeAssistant, node: RunningNode, model: ScriptedModel
) -> None:
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, node, **ASSIST)
    model.script = [
        call("GetLiveContext", "{}", f"call_{i}") for i in range(MAX_TOOL_ITERATIONS + 5)
    ]

    result = await ask(hass, agent_id, "What is on?")

    assert len(model.bodies) == MAX_TOOL_ITERATIONS
    assert result["response"]["response_type"] == "error"
    assert "10 rounds" in speech(result)


async def test_required_tool_mode_forces_then_releases_the_call(
    hass: HomeAssistant, node: RunningNode, model: ScriptedModel
) -> None:
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, node, **ASSIST, **{CONF_TOOL_MODE: TOOL_MODE_REQUIRED})
    model.script = [call("HassTurnOn", '{"name": "Kitchen light"}'), answer("On.")]

    await ask(hass, agent_id, "Kitchen light on")

    assert [body["tool_choice"] for body in model.bodies] == ["required", "none"]
    turn_on = next(t for t in model.bodies[0]["tools"] if t["function"]["name"] == "HassTurnOn")
    parameters = turn_on["function"]["parameters"]
    # Narrowed to the home: only real names, no device classes to copy, a target needed.
    assert parameters["properties"]["name"] == {"type": "string", "enum": ["Kitchen light"]}
    assert "device_class" not in parameters["properties"]
    assert parameters["required"] == ["name"]


@pytest.mark.parametrize(
    ("error", "language", "expected"),
    [
        (HeatcomputeOverloadedError("full", "overloaded", 3.0), "de", "ausgelastet"),
        (HeatcomputeOverloadedError("full", "overloaded", 3.0), "en", "busy right now"),
        (HeatcomputeUnavailableError("Loading model", None, None), "de", "wird noch geladen"),
        (HeatcomputeUnavailableError("Loading model", None, None), "en-GB", "still loading"),
        (HeatcomputeUnavailableError("no weights", "model_failed", None), "en", "not be loaded"),
        (HeatcomputeUnavailableError("no weights", "model_failed", None), "de", "nicht laden"),
    ],
)
async def test_node_errors_are_spoken_in_the_users_language(
    hass: HomeAssistant,
    node: RunningNode,
    model: ScriptedModel,
    error: HeatcomputeError,
    language: str,
    expected: str,
) -> None:
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, node)
    model.script = [error, error]

    result = await ask(hass, agent_id, "Hallo", language=language)

    assert result["response"]["response_type"] == "error"
    assert expected in speech(result)


async def test_history_goes_before_the_user_is_warned(
    hass: HomeAssistant, node: RunningNode, model: ScriptedModel
) -> None:
    # Room for the system prompt and one earlier turn, not two.
    model.context_length = 1400
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, node, **{CONF_MAX_HISTORY: 10})
    model.script = [answer("x" * 1500), answer("y" * 1500), answer("Short.")]
    first = await ask(hass, agent_id, "Tell me a long story")
    conversation_id = first["conversation_id"]
    await ask(hass, agent_id, "Another one", conversation_id=conversation_id)
    await ask(hass, agent_id, "Thanks", conversation_id=conversation_id)

    users = [m["content"][:12] for m in model.bodies[-1]["messages"] if m["role"] == "user"]
    assert users == ["Another one", "Thanks\n\n(Cur"]
    assert [len(body["messages"]) for body in model.bodies] == [2, 4, 4]


async def test_a_prompt_that_cannot_fit_is_explained(
    hass: HomeAssistant, node: RunningNode, model: ScriptedModel
) -> None:
    model.context_length = 200
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, node)

    result = await ask(hass, agent_id, "Hello?", language="de")

    assert model.bodies == []  # nothing cut silently, nothing sent
    assert result["response"]["response_type"] == "error"
    assert "fasst aber nur 200" in speech(result)


def too_long(tokens: int) -> HeatcomputeContextLengthError:
    """The node's refusal: its figures are fields (the sentence is for people)."""
    return HeatcomputeContextLengthError(
        400,
        "the prompt does not fit",
        "context_length_exceeded",
        {"prompt_tokens": tokens, "context_length": 8192, "max_tokens": 256},
    )


async def test_the_nodes_own_context_error_trims_then_warns(
    hass: HomeAssistant, node: RunningNode, model: ScriptedModel
) -> None:
    """A node that does not list its context length: its refusal is the signal."""
    model.context_length = None
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, node)
    first = await ask(hass, agent_id, "Hi")
    model.script = [too_long(9001), answer("Short.")]

    second = await ask(hass, agent_id, "Again", conversation_id=first["conversation_id"])

    assert speech(second) == "Short."
    assert [len(body["messages"]) for body in model.bodies[1:]] == [4, 2]  # history dropped

    model.script = [too_long(9001)]
    third = await ask(hass, agent_id, "Hello")  # a new conversation: nothing to drop
    assert third["response"]["response_type"] == "error"
    assert "about 9001 tokens, but the model holds only 8192" in speech(third)


async def test_a_context_error_without_figures_falls_back_to_the_estimate(
    hass: HomeAssistant, node: RunningNode, model: ScriptedModel
) -> None:
    """An older node (or another server) says it only in words: the agent's own estimate
    and the listed context length stand in; nothing is parsed out of the sentence."""
    model.context_length = 4096
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, node)
    model.script = [
        HeatcomputeContextLengthError(
            400,
            "This model's maximum context length is 8192 tokens; the messages have 9001.",
            "context_length_exceeded",
        )
    ]

    result = await ask(hass, agent_id, "Hello")

    assert result["response"]["response_type"] == "error"
    assert "but the model holds only 4096" in speech(result)
    assert "9001" not in speech(result)


async def test_assistant_options_in_the_options_form(
    hass: HomeAssistant, node: RunningNode, model: ScriptedModel
) -> None:
    await setup_home(hass)
    entry, agent_id = await setup_agent(hass, node)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_ASSISTANT: {
                CONF_LLM_API: llm.LLM_API_ASSIST,
                CONF_MODEL: MODEL,
                CONF_TOOL_MODE: TOOL_MODE_REQUIRED,
            }
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_ASSISTANT][CONF_LLM_API] == "assist"
    assert entry.options[CONF_ASSISTANT][CONF_MAX_HISTORY] == 10  # defaults filled in
    # Read at every turn: no reload needed.
    await ask(hass, agent_id, "Kitchen light on")
    assert model.bodies[-1]["model"] == MODEL
    assert model.bodies[-1]["tool_choice"] == "required"
    assert isinstance(entry, MockConfigEntry)


async def test_a_2026_chat_log_gets_its_llm_data_the_new_way(
    hass: HomeAssistant, node: RunningNode, model: ScriptedModel
) -> None:
    """Home Assistant 2026.x: `async_provide_llm_data(llm_context, ...)` where it exists."""
    from homeassistant.components.conversation import ChatLog, ConversationInput

    provided: list[tuple[Any, ...]] = []

    async def provide(
        self: ChatLog, llm_context: llm.LLMContext, api: str | None, prompt: str | None, extra: Any
    ) -> None:
        provided.append((llm_context, api, prompt, extra))

    def as_llm_context(self: ConversationInput, domain: str) -> llm.LLMContext:
        return llm.LLMContext(
            platform=domain,
            context=self.context,
            user_prompt=self.text,
            language=self.language,
            assistant="conversation",
            device_id=self.device_id,
        )

    await setup_home(hass)
    _, agent_id = await setup_agent(hass, node, **ASSIST)
    with (
        patch.object(ChatLog, "async_provide_llm_data", provide, create=True),
        patch.object(ChatLog, "async_update_llm_data", side_effect=AssertionError, create=True),
        patch.object(ConversationInput, "as_llm_context", as_llm_context, create=True),
    ):
        await ask(hass, agent_id, "Hi")
    assert len(provided) == 1
    assert provided[0][0].platform == "heatcompute"
    assert provided[0][1] == "assist"
    assert LIGHT  # the home is set up, even if this turn needs no tool
