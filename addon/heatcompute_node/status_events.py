"""Which status snapshots are worth a `status` event: a deadband per figure, a rate limit.

The node samples its hardware twice a second, and some figure moves on nearly every
sample (a tenth of a watt, a tenth of a watt-hour). Pushing each one made Home Assistant
record a power reading every half second (about 150,000 rows a day per sensor) for
changes nobody could see on a chart. Here a snapshot becomes an event only when a figure
moved by an amount that matters to the people and automations that read it:

- states (heat mode, switches, safety trips, jobs and requests in flight, model states)
  on any change;
- measured figures past a deadband (power: 5 % of the machine's maximum or 10 % of the
  value, room temperature: 0.1 °C, ...);
- counters and internal controller figures only with a periodic refresh.

Events are at most one per 0.8 s, but a change someone asked for (a new heat target, a
switch) goes out at once. An event carries the figures that moved less than their
deadband at the value last sent (an event for a started job must not be a new power
reading too); a refresh every few minutes sends them all as they are, so nothing shown
is stale for long.

The rules work on the status as it goes on the wire (docs/api.md), so they do not care
how the node assembles it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
import math
from typing import Any

# At most one event per this many seconds, except for changes someone asked for. Below a
# second, so a change that matters is in Home Assistant within one: it waits at most this
# long after the previous event, or one sample interval (0.5 s) when there was none.
MIN_INTERVAL_S = 0.8
# Figures that moved below their deadband are sent with the next event, or after this.
REFRESH_S = 300.0

type Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Deadband:
    """A number matters once it moved by `absolute` or by `relative` of its last value."""

    absolute: float = 0.0
    relative: float = 0.0

    def exceeded(self, old: float, new: float) -> bool:
        return abs(new - old) >= max(self.absolute, self.relative * abs(old))


EXACT = Deadband()
"""Any change matters (states, counts of things in flight)."""
QUIET = Deadband(absolute=math.inf)
"""Never a reason for an event by itself: sent with the next one or the refresh."""

type Rules = tuple[tuple[Path, Deadband | None], ...]


def rules(max_power_w: float = 200.0) -> Rules:
    """The deadbands of a node that may draw up to `max_power_w`.

    Watts matter relative to the machine: 5 % of its maximum power (10 W on a 200 W
    machine, 3 W on a 65 W one) or 10 % of the value. Measured while heating on the twin
    (a real SmolLM2 job, 60 W asked, a busy machine), the power sample moves by 1.8 W
    from one sample to the next (median) and by ±5 W around its mean: 5 W / 5 % still
    sent an event every 2.5 s, 10 W / 10 % one every 10 s, while a new heat target
    (5 W steps at the least, usually tens of watts) still crosses it at once.

    The first pattern that matches a path decides; "*" matches one key (a model id, a
    sensor name, a list index); None marks a clock field, never a change by itself.
    """
    watts = Deadband(absolute=0.05 * max_power_w, relative=0.1)
    return (
        (("uptime_s",), None),
        (("updated_at",), None),
        # Home Assistant re-sends the same target every minute to feed the watchdog.
        (("heat", "updated_at"), None),
        (("power_w",), watts),
        # 10 Wh: the Energy dashboard sums per hour; the refresh keeps the total exact.
        (("energy_kwh",), Deadband(absolute=0.01)),
        (("energy", "total_kwh"), Deadband(absolute=0.01)),
        (("energy", "wanted_kwh"), Deadband(absolute=0.01)),
        (("energy", "heat_reuse"), Deadband(absolute=0.005)),
        (("energy", "tokens_since_start"), QUIET),
        (("energy", "wh_per_1k_tokens"), Deadband(relative=0.05)),
        (("intensity",), Deadband(absolute=0.05)),
        (("temperatures", "chip_c"), Deadband(absolute=1.0)),
        (("temperatures", "sensors", "*"), Deadband(absolute=1.0)),
        (("temperatures", "room_c"), Deadband(absolute=0.1)),
        (("temperatures", "outside_c"), Deadband(absolute=0.5)),
        (("work", "tokens_per_s"), Deadband(absolute=1.0, relative=0.1)),
        (("work", "ttft_p95_s"), Deadband(absolute=0.05, relative=0.1)),
        (("work", "latency_p95_s"), Deadband(absolute=0.05, relative=0.1)),
        (("work", "filler_items"), Deadband(relative=0.1)),
        (("work", "index_chunks_indexed"), Deadband(relative=0.1)),
        (("governor", "heat_target_w"), Deadband(absolute=0.5)),
        (("governor", "setpoint_w"), watts),
        (("governor", "error_w"), QUIET),
        (("governor", "knobs", "*"), QUIET),
        (("llm", "*", "tokens_per_s"), Deadband(absolute=1.0, relative=0.1)),
        # Not shown in Home Assistant, and bursty while a job feeds prompts.
        (("llm", "*", "prompt_tokens_per_s"), Deadband(absolute=10.0, relative=0.25)),
        (("llm", "*", "ttft_p50_s"), Deadband(absolute=0.05, relative=0.1)),
        (("llm", "*", "ttft_p95_s"), Deadband(absolute=0.05, relative=0.1)),
        (("llm", "*", "latency_p50_s"), Deadband(absolute=0.05, relative=0.1)),
        (("llm", "*", "latency_p95_s"), Deadband(absolute=0.05, relative=0.1)),
        (("llm", "*", "tokens_per_request"), Deadband(relative=0.1)),
        (("llm", "*", "wh_per_request"), Deadband(relative=0.1)),
        (("llm", "*", "requests_total"), QUIET),
        (("llm", "*", "tokens_total"), QUIET),
        (("llm", "*", "cached_prompt_tokens_total"), QUIET),
        (("llm", "*", "kv_cells_used"), QUIET),
        (("llm", "*", "knobs", "*"), QUIET),
        (("llm", "*", "prompt_cache_bytes"), QUIET),
        (("llm", "*", "prompt_cache_entries"), QUIET),
        (("llm", "*", "prompt_cache_hits"), QUIET),
        # The node's own health figures (/metrics has them exactly): the worst lag moves
        # with every tick, a stall is counted and goes out with the next event.
        (("event_loop", "*"), QUIET),
        # A download's progress in whole percent is plenty for a progress bar.
        (("models", "*", "fraction"), Deadband(absolute=0.01)),
        (("models", "*", "bytes_done"), QUIET),
    )


def rule_for(path: Path, table: Rules) -> Deadband | None:
    """The deadband of a figure (None for clock fields); unlisted figures: any change."""
    for pattern, rule in table:
        if len(pattern) != len(path):
            continue
        if all(p in ("*", k) for p, k in zip(pattern, path, strict=True)):
            return rule
    return EXACT


def leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every figure of a status with its path; lists are indexed like mappings."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from leaves(item, (*path, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, str(index)))
    else:
        yield path, value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class StatusThrottle:
    """Decides when a status snapshot goes out as an event. Time is passed in."""

    def __init__(
        self,
        *,
        max_power_w: float = 200.0,
        min_interval_s: float = MIN_INTERVAL_S,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.rules = rules(max_power_w)
        self.min_interval_s = min_interval_s
        self.refresh_s = refresh_s
        self._rule_of: dict[Path, Deadband | None] = {}
        self._sent: dict[Path, Any] | None = None
        self._sent_at = -math.inf

    def delay(self, status: Mapping[str, Any], now: float, *, urgent: bool = False) -> float | None:
        """Seconds until `status` may go out (0: now), or None when it is not worth it.

        `urgent`: the change was asked for (a heat target, a switch); it skips the rate
        limit so whoever asked sees it at once.
        """
        figures = self._figures(status)
        if self._sent is None:
            return 0.0
        since = now - self._sent_at
        if self._significant(self._sent, figures):
            return 0.0 if urgent else max(self.min_interval_s - since, 0.0)
        if since >= self.refresh_s and figures != self._sent:
            return 0.0
        return None

    def outgoing(self, status: Mapping[str, Any], now: float) -> dict[str, Any]:
        """The status as it goes out.

        A figure that moved less than its deadband keeps the value last sent: an event
        for one figure (a job started) must not carry the others' noise, or every event
        would still be a new power reading in Home Assistant's recorder. The refresh
        sends every figure as it is.
        """
        if self._sent is None or now - self._sent_at >= self.refresh_s:
            return dict(status)
        held: dict[str, Any] = self._hold(status, ())
        return held

    def _hold(self, value: Any, path: Path) -> Any:
        if isinstance(value, Mapping):
            return {key: self._hold(item, (*path, str(key))) for key, item in value.items()}
        if isinstance(value, list):
            return [self._hold(item, (*path, str(index))) for index, item in enumerate(value)]
        rule = self._rule(path)
        assert self._sent is not None
        if rule is None or rule is EXACT or rule is QUIET or path not in self._sent:
            return value
        before = self._sent[path]
        old_number, new_number = _number(before), _number(value)
        if old_number is None or new_number is None or rule.exceeded(old_number, new_number):
            return value
        return before

    def sent(self, status: Mapping[str, Any], now: float) -> None:
        """Record that `status` went out at `now`: later ones are compared with it."""
        self._sent = self._figures(status)
        self._sent_at = now

    def _rule(self, path: Path) -> Deadband | None:
        if path not in self._rule_of:
            self._rule_of[path] = rule_for(path, self.rules)
        return self._rule_of[path]

    def _figures(self, status: Mapping[str, Any]) -> dict[Path, Any]:
        """The status without its clock fields."""
        return {path: value for path, value in leaves(status) if self._rule(path) is not None}

    def _significant(self, old: Mapping[Path, Any], new: Mapping[Path, Any]) -> bool:
        """Whether anything moved past its deadband (or appeared, or went away)."""
        if old.keys() != new.keys():
            return True
        for path, value in new.items():
            before = old[path]
            if before == value:
                continue
            rule = self._rule(path)
            if rule is None or rule is QUIET:
                continue
            old_number, new_number = _number(before), _number(value)
            if old_number is None or new_number is None:
                return True  # a state, a text, or a number that appeared or went away
            if rule.exceeded(old_number, new_number):
                return True
        return False


class StatusPublisher:
    """Offers the node's status to the throttle and publishes what passes.

    `status` makes a snapshot, `publish` sends it; a change the rate limit holds back
    goes out when the limit allows, even if nothing offers a newer status by then.
    """

    def __init__(
        self,
        status: Callable[[], Mapping[str, Any]],
        publish: Callable[[Mapping[str, Any]], None],
        clock: Callable[[], float],
        throttle: StatusThrottle | None = None,
    ) -> None:
        self._status = status
        self._publish = publish
        self._clock = clock
        self.throttle = throttle or StatusThrottle()
        self._held_back: asyncio.TimerHandle | None = None

    def offer(self, *, urgent: bool = False) -> None:
        """Publish the status now if it is worth it (`urgent`: someone asked for it)."""
        status = self._status()
        now = self._clock()
        delay = self.throttle.delay(status, now, urgent=urgent)
        if delay is None:
            return
        if delay > 0:
            if self._held_back is None:
                self._held_back = asyncio.get_running_loop().call_later(delay, self._release)
            return
        self.cancel()
        outgoing = self.throttle.outgoing(status, now)
        self.throttle.sent(outgoing, now)
        self._publish(outgoing)

    def cancel(self) -> None:
        """Forget a held-back status (the node stops)."""
        if self._held_back is not None:
            self._held_back.cancel()
            self._held_back = None

    def _release(self) -> None:
        self._held_back = None
        self.offer()
