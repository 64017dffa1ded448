"""The voice assistant: a conversation agent on the nodes' LLM, with Assist tools.

One agent per node entry (its options hold the prompt, the LLM API, the model...); each
conversation is answered by the node whose room wants heat most (router.py). An agent
reads its own entry's options and the fleet's nodes (fleet.py), nothing else; it can
answer, and shows as available, while any node of the fleet can. See docs/voice.md for
the whole picture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
import json
from typing import Any, Literal

from homeassistant.components import conversation
from homeassistant.components.conversation.models import AbstractConversationAgent
from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import TemplateError
from homeassistant.helpers import intent, llm, template
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util

from .agent_options import AgentSettings
from .chat_client import (
    ChatReply,
    HeatcomputeContextLengthError,
    ModelInfo,
    chat,
    list_models,
    tool_call_dicts,
)
from .client import (
    HeatcomputeAuthenticationError,
    HeatcomputeError,
    HeatcomputeOverloadedError,
    HeatcomputeResponseError,
    HeatcomputeUnavailableError,
)
from .const import (
    DOMAIN,
    LOGGER,
    MAX_TOOL_ITERATIONS,
    TOOL_MODE_REQUIRED,
)
from .coordinator import HeatcomputeConfigEntry
from .entity import node_device_info
from .fleet import Fleet, async_get_fleet
from .messages import Message, format_tools, last_turns, read_only_tools, split_turns
from .prompt import (
    PromptTooLargeError,
    TokenEstimator,
    compose_system_prompt,
    fit_to_context,
    message_chars,
    tools_chars,
)
from .router import Node, NodeRouter
from .tool_args import InvalidToolCallError, repair_tool_call
from .tool_schema import exposed_home, narrow_tools

PARALLEL_UPDATES = 0  # conversations run side by side; the nodes queue them


class AgentError(Exception):
    """Ends a turn with a message spoken to the user (translated: strings.json)."""

    def __init__(self, key: str, **placeholders: Any) -> None:
        super().__init__(key)
        self.key = key
        self.placeholders = {k: str(v) for k, v in placeholders.items()}


def agent_error(err: HeatcomputeError) -> AgentError:
    """What to tell the user when the nodes could not answer."""
    if isinstance(err, HeatcomputeUnavailableError):
        if err.code == "no_model":
            return AgentError("no_model")
        if err.not_serving:
            return AgentError("not_serving")
        if err.code == "model_failed":
            return AgentError("model_failed")
        if err.model_loading:
            return AgentError("model_loading")
        return AgentError("node_down")
    if isinstance(err, HeatcomputeOverloadedError):
        return AgentError("overloaded")
    if isinstance(err, HeatcomputeAuthenticationError):
        return AgentError("invalid_auth")
    if isinstance(err, HeatcomputeResponseError):
        return AgentError("node_refused", error=err)
    return AgentError("node_down")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HeatcomputeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_add_entities([HeatcomputeConversationEntity(entry, async_get_fleet(hass))])


class HeatcomputeConversationEntity(conversation.ConversationEntity, AbstractConversationAgent):
    """A conversation agent on its node's device, answered by the fleet's nodes."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_translation_key = "assistant"
    _shown_available: bool | None = None

    def __init__(self, entry: HeatcomputeConfigEntry, fleet: Fleet) -> None:
        coordinator = entry.runtime_data.coordinator
        self._attr_unique_id = f"{coordinator.data.node_id}_assistant"
        self._attr_device_info = node_device_info(coordinator)
        self._entry = entry
        self._fleet = fleet
        self._router = NodeRouter()
        self._estimator = TokenEstimator()
        self._models: dict[str, list[ModelInfo]] = {}

    @property
    def settings(self) -> AgentSettings:
        return AgentSettings.from_options(self._entry.options)

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        return MATCH_ALL

    @property
    def supported_features(self) -> conversation.ConversationEntityFeature:
        if self.settings.llm_api:
            return conversation.ConversationEntityFeature.CONTROL
        return conversation.ConversationEntityFeature(0)

    @property
    def available(self) -> bool:
        # Any healthy node can answer, not only the one this agent was set up with; the
        # agent follows every node's updates, so this is never stale.
        return self._fleet.can_answer

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self._fleet.async_add_listener(self._async_fleet_changed))
        conversation.async_set_agent(self.hass, self._entry, self)

    async def async_will_remove_from_hass(self) -> None:
        conversation.async_unset_agent(self.hass, self._entry)
        await super().async_will_remove_from_hass()

    @callback
    def _async_fleet_changed(self) -> None:
        # Only availability depends on the nodes: write when that flips.
        if self.available != self._shown_available:
            self.async_write_ha_state()

    @callback
    def async_write_ha_state(self) -> None:
        self._shown_available = self.available
        super().async_write_ha_state()

    # --- a turn ------------------------------------------------------------------------

    async def _async_handle_message(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog
    ) -> conversation.ConversationResult:
        settings = self.settings
        try:
            await _provide_llm_data(chat_log, user_input, settings)
        except conversation.ConverseError as err:
            return err.as_conversation_result()
        agent_id = user_input.agent_id or self.entity_id
        try:
            await self._answer(user_input, chat_log, settings, agent_id)
        except AgentError as err:
            message = await spoken_message(self.hass, user_input.language, err)
            LOGGER.info("answer failed: %s", message)
            # Keeps the history a sequence of questions and answers.
            chat_log.async_add_assistant_content_without_tools(
                conversation.AssistantContent(agent_id=agent_id, content=message)
            )
            response = intent.IntentResponse(language=user_input.language)
            response.async_set_error(intent.IntentResponseErrorCode.UNKNOWN, message)
            return conversation.ConversationResult(
                response=response, conversation_id=chat_log.conversation_id
            )
        response = intent.IntentResponse(language=user_input.language)
        last = chat_log.content[-1]
        response.async_set_speech(
            last.content or "" if isinstance(last, conversation.AssistantContent) else ""
        )
        return conversation.ConversationResult(
            response=response,
            conversation_id=chat_log.conversation_id,
            continue_conversation=chat_log.continue_conversation,
        )

    async def _answer(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
        settings: AgentSettings,
        agent_id: str,
    ) -> None:
        api = chat_log.llm_api
        tools, schemas = format_tools(api)
        if tools and settings.tool_mode == TOOL_MODE_REQUIRED:
            tools = narrow_tools(tools, exposed_home(self.hass), read_only_tools(api))
        has_clock = any(name.endswith("GetDateTime") for name in schemas)
        system_prompt = compose_system_prompt(
            instructions=await self._render_instructions(user_input, settings, api),
            api_prompt=api.api_prompt if api else None,
            extra=chat_log.extra_system_prompt,
            now=None if has_clock else dt_util.now(),
        )
        # The node writes the tool definitions after the system prompt, so the time
        # goes with the user's message: everything before it stays a cacheable prefix.
        system: Message = {"role": "system", "content": system_prompt.stable}
        # Error turns for calls that could not be repaired: shown to the model, kept out
        # of the chat log (they are the model's slip, not the conversation).
        corrections: list[Message] = []
        tools_ran = False
        for _iteration in range(MAX_TOOL_ITERATIONS):
            history, current = split_turns(chat_log.content)
            request = _Request(
                system=system,
                history=last_turns(history, settings.max_history),
                current=[*_with_note(current, system_prompt.volatile), *corrections],
                tools=tools,
                tool_choice=_tool_choice(settings, bool(tools), tools_ran),
                settings=settings,
            )
            reply = await self._ask(chat_log.conversation_id, request)
            calls, errors = _repair_calls(reply, schemas)
            if not calls and not errors and not reply.content.strip():
                raise AgentError("empty_answer")
            if errors:
                corrections.extend(_correction_turn(reply, errors))
                continue
            corrections.clear()
            async for _content in chat_log.async_add_delta_content_stream(
                agent_id, _deltas(reply.content, calls)
            ):
                pass
            if not chat_log.unresponded_tool_results:
                return
            tools_ran = True
        raise AgentError("tool_loop", iterations=MAX_TOOL_ITERATIONS)

    async def _render_instructions(
        self,
        user_input: conversation.ConversationInput,
        settings: AgentSettings,
        api: llm.APIInstance | None,
    ) -> str:
        user_name = None
        if user_input.context.user_id and (
            user := await self.hass.auth.async_get_user(user_input.context.user_id)
        ):
            user_name = user.name
        try:
            rendered = template.Template(settings.prompt, self.hass).async_render(
                {
                    "ha_name": self.hass.config.location_name,
                    "user_name": user_name,
                    "llm_context": api.llm_context if api else None,
                },
                parse_result=False,
            )
        except TemplateError as err:
            raise AgentError("prompt_template", error=err) from err
        return str(rendered)

    async def _ask(self, conversation_id: str, request: _Request) -> ChatReply:
        """One model call, on the best node, with one retry elsewhere if it fails."""

        async def on(node: Node) -> ChatReply:
            return await self._ask_node(node, request)

        try:
            node, reply = await self._router.run(
                conversation_id, self._fleet.nodes(), request.settings.model, on
            )
        except PromptTooLargeError as err:
            raise AgentError("prompt_too_large", needed=err.needed, limit=err.limit) from err
        except HeatcomputeError as err:
            raise agent_error(err) from err
        LOGGER.debug(
            "%s answered: ttft %.3f s, %s of %s prompt tokens cached",
            node.name,
            reply.ttft_s or 0.0,
            reply.cached_tokens,
            reply.prompt_tokens,
        )
        return reply

    async def _ask_node(self, node: Node, request: _Request) -> ChatReply:
        model = await self._model_on(node, request.settings.model)
        fitted = fit_to_context(
            system=request.system,
            history=request.history,
            current=request.current,
            tools=request.tools,
            context_length=model.context_length,
            max_tokens=request.settings.max_tokens,
            estimator=self._estimator,
            model=model.id,
        )
        if fitted.dropped_turns:
            LOGGER.debug("left out %s earlier turns to fit the context", fitted.dropped_turns)
        try:
            reply = await self._chat(node, request.body(model.id, fitted.messages))
        except HeatcomputeContextLengthError as err:
            # The estimate was too low: learn from the node's count, then try once more
            # with no earlier turns; if even that is too long, the user is told. A node
            # that sends no counts (older, or another server) leaves the estimate as is.
            limit = err.context_length or model.context_length or 0
            needed = err.prompt_tokens or fitted.estimated_tokens
            if err.prompt_tokens is not None:
                self._estimator.calibrate(model.id, _chars(fitted.messages, request), needed)
            if not request.history:
                raise PromptTooLargeError(needed, limit) from err
            messages = [request.system, *request.current]
            reply = await self._chat(node, request.body(model.id, messages))
        else:
            self._estimator.calibrate(
                model.id, _chars(fitted.messages, request), reply.prompt_tokens
            )
        return reply

    async def _chat(self, node: Node, body: dict[str, Any]) -> ChatReply:
        try:
            return await chat(node.client, body)
        except HeatcomputeContextLengthError:
            raise
        except HeatcomputeError:
            # A node that failed may come back with other models: ask it again next time.
            self._models.pop(node.node_id, None)
            raise

    async def _model_on(self, node: Node, wanted: str | None) -> ModelInfo:
        models = self._models.get(node.node_id)
        if models is None or (wanted and wanted not in {m.id for m in models}):
            models = self._models[node.node_id] = await list_models(node.client)
        for model in models:
            # Without a choice, the first model that chats: a node lists its embedding
            # model too, and by name it may come first.
            if model.id == wanted or (not wanted and model.chats):
                return model
        if wanted:
            return ModelInfo(id=wanted, context_length=None)  # the node will say
        raise HeatcomputeUnavailableError("the node serves no chat model", "no_model", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request:
    system: Message
    history: list[list[Message]]
    current: list[Message]
    tools: list[Message]
    tool_choice: str | None
    settings: AgentSettings

    def body(self, model: str, messages: list[Message]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
        }
        if self.tools:
            # Sent every round, even when no call is allowed: the template writes them
            # into the prompt, which must stay the same for the prefix cache.
            body["tools"] = self.tools
            if self.tool_choice:
                body["tool_choice"] = self.tool_choice
        return body


def _chars(messages: list[Message], request: _Request) -> int:
    return sum(message_chars(m) for m in messages) + tools_chars(request.tools)


def _with_note(turn: list[Message], note: str) -> list[Message]:
    """The turn with `note` after the user's words (the chat log keeps them as said)."""
    if not note or not turn or turn[0]["role"] != "user":
        return turn
    first = {**turn[0], "content": f"{turn[0]['content']}\n\n({note})"}
    return [first, *turn[1:]]


def _tool_choice(settings: AgentSettings, has_tools: bool, tools_ran: bool) -> str | None:
    if not has_tools or settings.tool_mode != TOOL_MODE_REQUIRED:
        return None
    # First a tool call the node's grammar guarantees, then a spoken answer.
    return "none" if tools_ran else "required"


def _repair_calls(
    reply: ChatReply, schemas: Mapping[str, Mapping[str, Any]]
) -> tuple[list[llm.ToolInput], dict[str, str]]:
    calls: list[llm.ToolInput] = []
    errors: dict[str, str] = {}
    for call in reply.tool_calls:
        try:
            name, args = repair_tool_call(call.name, call.arguments, schemas)
        except InvalidToolCallError as err:
            errors[call.id] = str(err)
            continue
        calls.append(llm.ToolInput(tool_name=name, tool_args=args, id=call.id))
    return calls, errors


def _correction_turn(reply: ChatReply, errors: Mapping[str, str]) -> list[Message]:
    """The model's broken calls and, for each, a tool message saying what was wrong."""
    turn: list[Message] = [
        {
            "role": "assistant",
            "content": reply.content,
            "tool_calls": tool_call_dicts(reply.tool_calls),
        }
    ]
    for call in reply.tool_calls:
        error = errors.get(call.id, "not run: another call in the same answer was invalid")
        turn.append(
            {
                "role": "tool",
                "tool_call_id": call.id,
                "content": json.dumps({"error": "InvalidToolCallError", "error_text": error}),
            }
        )
    return turn


async def _deltas(
    content: str, calls: list[llm.ToolInput]
) -> AsyncIterator[conversation.AssistantContentDeltaDict]:
    delta: conversation.AssistantContentDeltaDict = {"role": "assistant"}
    if content:
        delta["content"] = content
    if calls:
        delta["tool_calls"] = calls
    yield delta


async def _provide_llm_data(
    chat_log: conversation.ChatLog,
    user_input: conversation.ConversationInput,
    settings: AgentSettings,
) -> None:
    """Set the chat log's LLM API (tools) and extra prompt, on either release.

    2026.x has `async_provide_llm_data` (and reports the old call as deprecated);
    2025.4 only has `async_update_llm_data`.
    """
    provide = getattr(chat_log, "async_provide_llm_data", None)
    if provide is not None:
        await provide(
            user_input.as_llm_context(DOMAIN),  # type: ignore[attr-defined]
            settings.llm_api,
            settings.prompt,
            user_input.extra_system_prompt,
        )
        return
    await chat_log.async_update_llm_data(DOMAIN, user_input, settings.llm_api, settings.prompt)


async def spoken_message(hass: HomeAssistant, language: str, err: AgentError) -> str:
    """The error's message in the user's language (English when there is none)."""
    key = f"component.{DOMAIN}.exceptions.{err.key}.message"
    for lang in dict.fromkeys((language, language.split("-")[0], "en")):
        translations = await async_get_translations(hass, lang, "exceptions", [DOMAIN])
        if key in translations:
            text = str(translations[key])
            for name, value in err.placeholders.items():
                text = text.replace("{" + name + "}", value)
            return text
    return err.key
