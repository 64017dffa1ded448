"""What the LLM engine refuses a request with; the API turns each into an HTTP error."""

from __future__ import annotations


class EngineError(Exception):
    """Base of what `submit` raises."""


class ContextLengthError(EngineError):
    def __init__(self, prompt_tokens: int, limit: int) -> None:
        super().__init__(
            f"the prompt has {prompt_tokens} tokens; this model's context holds {limit}"
        )
        self.prompt_tokens = prompt_tokens
        self.limit = limit


class EngineOverloadedError(EngineError):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__("too many requests are waiting; try again shortly")
        self.retry_after_s = retry_after_s


class EngineStoppedError(EngineError):
    """The engine is shutting down or was unloaded."""
