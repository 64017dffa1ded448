"""The /v1 API's refusals that clients act on, in OpenAI's error shape.

Each carries what a client needs as fields, not only in the sentence: a model that is
loading says when to come back (Retry-After), a context overflow says its token counts.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib

from ..engines.llm.embeddings import InputTooLongError
from ..engines.llm.errors import ContextLengthError
from ..engines.llm.models import ModelLoadFailedError, ModelLoadingError, ModelNotFoundError
from .errors import ApiError


@contextlib.contextmanager
def model_errors() -> Iterator[None]:
    """A model that is missing (404), still loading or failed to load (503)."""
    try:
        yield
    except ModelNotFoundError as err:
        raise ApiError(
            404, str(err), type="invalid_request_error", code="model_not_found", param="model"
        ) from err
    except ModelLoadingError as err:
        raise ApiError(
            503,
            str(err),
            code="model_loading",
            headers={"Retry-After": str(err.retry_after_s)},
            details={"model": err.model_id, "retry_after_s": err.retry_after_s},
        ) from err
    except ModelLoadFailedError as err:
        # The next request tries the load again; another node may have it working.
        raise ApiError(503, str(err), code="model_failed", details={"model": err.model_id}) from err


def context_length_exceeded(
    err: ContextLengthError, *, param: str, max_tokens: int | None
) -> ApiError:
    """The prompt does not fit: its tokens, the model's context and the answer asked for."""
    return ApiError(
        400,
        f"This model's maximum context length is {err.limit} tokens; "
        f"the {param} have {err.prompt_tokens}.",
        code="context_length_exceeded",
        param=param,
        details={
            "prompt_tokens": err.prompt_tokens,
            "context_length": err.limit,
            "max_tokens": max_tokens,
        },
    )


def input_too_long(err: InputTooLongError) -> ApiError:
    """One embeddings input does not fit the model's context."""
    return ApiError(
        400,
        str(err),
        code="context_length_exceeded",
        param="input",
        details={
            "prompt_tokens": err.tokens,
            "context_length": err.limit,
            "input_index": err.index,
        },
    )
