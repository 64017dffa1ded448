"""How big a step of background work may be, so that people never wait long for one.

A decode call cannot be interrupted. A request from a person that arrives while the
engine runs a step of background work waits for that step to end, and a step that
prefills 512 prompt tokens of a batch job takes over a second on a small CPU: the voice
answer would start that much later. So background-only steps carry only as many tokens
as fit in `target_s` (50 ms by default), measured as the engine runs: a background
step's time per token, smoothed. Steps that serve people are not limited.
"""

from __future__ import annotations

from dataclasses import dataclass

# Until the first background step is measured, this many tokens: small enough for any
# model this engine runs on a CPU to finish them in a fraction of a second.
_FIRST_GUESS_TOKENS = 16
_SMOOTHING = 0.2


@dataclass(slots=True)
class BackgroundStepBudget:
    target_s: float = 0.05
    """What one background step may take, at most about."""
    min_prompt_tokens: int = 8
    """Prompt tokens a step may always carry, however many sequences it decodes: new
    background sequences keep starting while others generate."""
    _seconds_per_token: float | None = None

    def prompt_tokens(self, decode_rows: int) -> int:
        """Prompt tokens the next background step may carry besides `decode_rows`."""
        if self._seconds_per_token is None:
            total = _FIRST_GUESS_TOKENS
        else:
            total = int(self.target_s / self._seconds_per_token)
        return max(self.min_prompt_tokens, total - decode_rows)

    def record(self, seconds: float, tokens: int) -> None:
        """A background step of `tokens` tokens took `seconds`."""
        if tokens <= 0 or seconds <= 0:
            return
        # Seconds per token of the whole step, fixed costs included: for the small steps
        # this budget makes, that is the figure that predicts the next step's length.
        sample = seconds / tokens
        if self._seconds_per_token is None:
            self._seconds_per_token = sample
        else:
            self._seconds_per_token += _SMOOTHING * (sample - self._seconds_per_token)
