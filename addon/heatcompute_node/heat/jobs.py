"""Deferrable jobs: what a job is, its states, and how a submission is validated.

A job is a list of items of one kind (chat prompts, completion prompts, texts to embed,
images to read: ``read_text``, always a folder of images),
a deadline and a priority. One more kind is never submitted: ``index``, the document
index's backlog, which the heat service plans like a job (``index_work.py``). A job runs
when heat is wanted, and regardless when its deadline would otherwise be missed. States::

    queued -> running -> completed | failed
       ^         |
       +---------+  (heat no longer wanted: the job waits again, keeping its results)
    queued | running -> cancelled  (DELETE)

``completed`` means every item has a result; items that failed on their own carry an
``error`` in their result. ``failed`` means every item failed, or the job as a whole
could not run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
import math
import secrets
from typing import Any, Literal, get_args

type SubmittedKind = Literal["chat", "completions", "embeddings", "read_text"]
type JobKind = SubmittedKind | Literal["index"]
type JobState = Literal["queued", "running", "completed", "failed", "cancelled"]
type JobPriority = Literal["low", "normal", "high"]

JOB_KINDS: tuple[SubmittedKind, ...] = get_args(SubmittedKind.__value__)
"""The kinds a client may submit."""
JOB_STATES: tuple[JobState, ...] = get_args(JobState.__value__)
PRIORITIES: tuple[JobPriority, ...] = get_args(JobPriority.__value__)
PRIORITY_RANK: dict[JobPriority, int] = {"high": 0, "normal": 1, "low": 2}
TERMINAL_STATES: frozenset[JobState] = frozenset({"completed", "failed", "cancelled"})

MAX_ITEMS = 10_000
MAX_ITEM_CHARS = 200_000
DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_LIMIT = 8192
REQUEST_FIELDS = frozenset(
    {
        "kind",
        "model",
        "items",
        "folder",
        "pattern",
        "deadline",
        "deadline_in_s",
        "priority",
        "max_tokens",
        "temperature",
        "top_p",
        "seed",
        "stop",
        "metadata",
    }
)
_ROLES = ("system", "user", "assistant")


class JobError(ValueError):
    """A submission the node refuses; ``param`` names the field at fault."""

    def __init__(
        self, message: str, *, param: str | None = None, code: str = "invalid_job"
    ) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def new_job_id() -> str:
    return "job_" + secrets.token_hex(8)


@dataclass(slots=True, kw_only=True)
class Job:
    """A job's record (its items and results live in the store). Owned by the executor."""

    id: str
    kind: JobKind
    model: str | None = None
    state: JobState = "queued"
    priority: JobPriority = "normal"
    deadline: float | None = None
    """Unix time by which the job must be done; None: whenever heat is wanted."""
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    total_items: int
    done_items: int = 0
    """Items with a result (including failed ones)."""
    failed_items: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None
    """The resolved directory a folder job reads (inside an allowed job folder)."""
    metadata: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    energy_wh: float = 0.0
    """Energy drawn while the job ran, shared among the jobs running at the same time."""
    forced_s: float = 0.0
    """Seconds the job ran because of its deadline while no heat was wanted."""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def remaining_items(self) -> int:
        return self.total_items - self.done_items

    @property
    def work_units_per_item(self) -> float:
        """Units the throughput estimate counts in: tokens at most for text, 1 per embedding
        (and per image read, per document chunk indexed)."""
        if self.kind in ("embeddings", "read_text", "index"):
            return 1.0
        return float(self.params["max_tokens"])

    def deadline_missed(self, now: float) -> bool:
        if self.deadline is None:
            return False
        end = self.finished_at if self.finished_at is not None else now
        return end > self.deadline and self.state != "cancelled"

    def to_record(self) -> dict[str, Any]:
        """Everything, for the store."""
        return {name: getattr(self, name) for name in _RECORD_FIELDS}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        return cls(**{k: v for k, v in record.items() if k in _RECORD_FIELDS})

    def as_dict(self, now: float) -> dict[str, Any]:
        """The job as the API shows it (without results)."""
        tokens = self.prompt_tokens + self.completion_tokens
        return {
            "id": self.id,
            "object": "job",
            "kind": self.kind,
            "model": self.model,
            "state": self.state,
            "priority": self.priority,
            "deadline": _iso(self.deadline),
            "deadline_missed": self.deadline_missed(now),
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "progress": {
                "total": self.total_items,
                "done": self.done_items,
                "failed": self.failed_items,
                "ratio": round(self.done_items / self.total_items, 4) if self.total_items else 1.0,
            },
            "params": dict(self.params),
            "folder": self.folder,
            "metadata": dict(self.metadata),
            "error": self.error,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": tokens,
            },
            "energy": {
                "wh": round(self.energy_wh, 4),
                "wh_per_1k_tokens": round(self.energy_wh * 1000 / tokens, 4) if tokens else None,
                "deadline_forced_s": round(self.forced_s, 1),
            },
        }


_RECORD_FIELDS = tuple(Job.__dataclass_fields__)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRequest:
    """A validated submission, before its items are stored."""

    kind: JobKind
    model: str | None
    priority: JobPriority
    deadline: float | None
    params: dict[str, Any]
    metadata: dict[str, str]
    items: tuple[dict[str, Any], ...]
    """Inline items; empty for a folder job (its files are listed later)."""
    folder: str | None
    pattern: str


def parse_job_request(body: dict[str, Any], *, now: float) -> JobRequest:
    """Validate a POST /api/jobs body; raises :class:`JobError` naming the bad field."""
    unknown = sorted(set(body) - REQUEST_FIELDS)
    if unknown:
        raise JobError(
            f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(REQUEST_FIELDS))}",
            param=unknown[0],
            code="unknown_field",
        )
    kind = body.get("kind")
    if kind not in JOB_KINDS:
        raise JobError(f"kind must be one of {', '.join(JOB_KINDS)}, got {kind!r}", param="kind")
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise JobError("model must be a model id", param="model")
    priority = body.get("priority", "normal")
    if priority not in PRIORITIES:
        raise JobError(f"priority must be one of {', '.join(PRIORITIES)}", param="priority")
    folder, items = _parse_source(kind, body)
    pattern = body.get("pattern", "*.jpg" if kind == "read_text" else "*.txt")
    if not isinstance(pattern, str) or not pattern or "/" in pattern or ".." in pattern:
        raise JobError("pattern must be a file name pattern like *.md", param="pattern")
    return JobRequest(
        kind=kind,
        model=model,
        priority=priority,
        deadline=_parse_deadline(body, now),
        params=_parse_params(kind, body),
        metadata=_parse_metadata(body.get("metadata", {})),
        items=items,
        folder=folder,
        pattern=pattern,
    )


def _parse_source(
    kind: JobKind, body: dict[str, Any]
) -> tuple[str | None, tuple[dict[str, Any], ...]]:
    folder, raw = body.get("folder"), body.get("items")
    if folder is not None:
        if kind not in ("embeddings", "read_text"):
            raise JobError("folder is only for embeddings and read_text jobs", param="folder")
        if raw is not None:
            raise JobError("give items or folder, not both", param="folder")
        if not isinstance(folder, str) or not folder:
            raise JobError("folder must be a directory path", param="folder")
        return folder, ()
    if kind == "read_text":
        raise JobError("read_text jobs read a folder of images: give folder", param="folder")
    if not isinstance(raw, list) or not raw:
        raise JobError("items must be a non-empty list", param="items")
    if len(raw) > MAX_ITEMS:
        raise JobError(
            f"a job holds at most {MAX_ITEMS} items, got {len(raw)}",
            param="items",
            code="too_many_items",
        )
    parse = {"chat": _chat_item, "completions": _text_item, "embeddings": _text_item}[kind]
    items = []
    for index, item in enumerate(raw):
        try:
            items.append(parse(item, kind))
        except JobError as err:
            raise JobError(f"items[{index}]: {err}", param="items") from err
    return None, tuple(items)


def _text_item(item: Any, kind: JobKind) -> dict[str, Any]:
    if not isinstance(item, str) or not item:
        raise JobError("must be a non-empty string")
    if len(item) > MAX_ITEM_CHARS:
        raise JobError(f"is longer than {MAX_ITEM_CHARS} characters")
    return {"prompt": item} if kind == "completions" else {"input": item}


def _chat_item(item: Any, kind: JobKind) -> dict[str, Any]:
    # A bare message list is accepted as a shorthand for {"messages": [...]}.
    messages = item.get("messages") if isinstance(item, dict) else item
    if not isinstance(messages, list) or not messages:
        raise JobError('must be {"messages": [...]} with at least one message')
    size = 0
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in _ROLES
            or not isinstance(message.get("content"), str)
            or set(message) - {"role", "content"}
        ):
            raise JobError('each message must be {"role": system|user|assistant, "content": str}')
        size += len(message["content"])
    if size > MAX_ITEM_CHARS:
        raise JobError(f"is longer than {MAX_ITEM_CHARS} characters")
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}


def _parse_deadline(body: dict[str, Any], now: float) -> float | None:
    if "deadline" in body and "deadline_in_s" in body:
        raise JobError("give deadline or deadline_in_s, not both", param="deadline")
    if body.get("deadline_in_s") is not None:
        seconds = body["deadline_in_s"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise JobError("deadline_in_s must be a number of seconds", param="deadline_in_s")
        if not math.isfinite(seconds) or seconds <= 0:
            raise JobError("deadline_in_s must be positive", param="deadline_in_s")
        return now + float(seconds)
    raw = body.get("deadline")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise JobError("deadline must be an RFC 3339 date-time string", param="deadline")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError as err:
        raise JobError(f"deadline is not an RFC 3339 date-time: {raw!r}", param="deadline") from err
    if when.tzinfo is None:
        raise JobError("deadline needs a time zone (e.g. +01:00 or Z)", param="deadline")
    # A deadline already past means due now: the job runs at once, at the power cap
    # (a client's clock may be a little ahead of the node's, and the intent is plain).
    return max(when.timestamp(), now)


def _parse_params(kind: JobKind, body: dict[str, Any]) -> dict[str, Any]:
    if kind in ("embeddings", "read_text"):
        for name in ("max_tokens", "temperature", "top_p", "seed", "stop"):
            if name in body:
                raise JobError(f"{name} does not apply to {kind}", param=name)
        return {}
    params: dict[str, Any] = {
        "max_tokens": _number(body, "max_tokens", DEFAULT_MAX_TOKENS, 1, MAX_TOKENS_LIMIT, int),
        "temperature": _number(body, "temperature", 0.7, 0.0, 2.0, float),
        "top_p": _number(body, "top_p", 1.0, 0.0, 1.0, float),
    }
    if params["top_p"] == 0:
        raise JobError("top_p must be above 0", param="top_p")
    if body.get("seed") is not None:
        params["seed"] = _number(body, "seed", 0, 0, 2**31 - 1, int)
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stops, list)
            or len(stops) > 4
            or not all(isinstance(s, str) and s for s in stops)
        ):
            raise JobError("stop must be a string or up to 4 strings", param="stop")
        params["stop"] = stops
    return params


def _number[T: (int, float)](
    body: dict[str, Any], name: str, default: T, low: T, high: T, kind: type[T]
) -> T:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobError(f"{name} must be a number", param=name)
    if kind is int and value != int(value):
        raise JobError(f"{name} must be a whole number", param=name)
    if not math.isfinite(value) or not low <= value <= high:
        raise JobError(f"{name} must be between {low} and {high}, got {value}", param=name)
    return kind(value)


def _parse_metadata(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or len(raw) > 16:
        raise JobError("metadata must be an object of at most 16 strings", param="metadata")
    for key, value in raw.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 512:
            raise JobError(
                "metadata values must be strings (keys <= 64, values <= 512 chars)",
                param="metadata",
            )
    return dict(raw)
