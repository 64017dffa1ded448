"""The heat controller: on every hardware sample, safety -> plan -> governor -> engine.

    reading ──> safety (trips, effective heat target)
            ──> planner (which jobs may run: heat wanted? deadlines?)
            ──> governor (setpoint vs measured power -> intensity -> knobs)
            ──> engine knobs + executor (items in flight), energy shared among jobs

The setpoint: the power cap while a job runs for its deadline (done soonest, fewest
idle-watt seconds), else the heat target while heat is wanted, else nothing to do.
"""

from __future__ import annotations

from dataclasses import replace
import os

from ..events import EventHub
from ..hardware.base import HardwareReading
from ..node import Node
from ..snapshot import EnergyFigures
from .executor import JobExecutor
from .governor import (
    PAUSED,
    BackgroundControl,
    Governor,
    GovernorParams,
    KnobApplier,
    knobs_for,
)
from .job_runner import JobRunner
from .runners import AllEngines
from .safety import SafetyEvent, SafetyLimits, SafetyMonitor
from .scheduling import IDLE_PLAN, Plan
from .status import GovernorFigures, HeatControlSnapshot, JobFigures

# Background sequences the engine may batch: more costs the same watts per step and
# yields more tokens per joule, but each one slows the interactive stream it shares
# steps with.
DEFAULT_MAX_PARALLEL = 4
# Background requests over the API (not jobs) run with heat; with no heat wanted they wait
# at most this long, then run at full power like a job at its deadline: a caller is waiting.
EXTERNAL_WAIT_S = 60.0


class HeatController:
    def __init__(
        self,
        node: Node,
        executor: JobExecutor,
        runner: JobRunner,
        *,
        max_parallel: int = DEFAULT_MAX_PARALLEL,
        n_threads: int | None = None,
        external_wait_s: float = EXTERNAL_WAIT_S,
    ) -> None:
        settings = node.settings
        self.node = node
        self.executor = executor
        self.runner = runner
        self.max_parallel = max_parallel
        self.external_wait_s = external_wait_s
        self._n_threads = n_threads
        self.governor = Governor(
            GovernorParams(idle_w=settings.idle_power_w, max_w=settings.max_power_w)
        )
        self.safety = SafetyMonitor(
            SafetyLimits(
                chip_limit_c=settings.chip_temp_limit_c,
                chip_hysteresis_c=settings.chip_temp_hysteresis_c,
                watchdog_s=settings.watchdog_min * 60.0,
                safe_w=settings.watchdog_safe_w,
            ),
            on_event=self._on_safety_event,
        )
        self.applier = KnobApplier()
        self.plan: Plan = IDLE_PLAN
        self._last_sample: float | None = None
        self._start_tokens = runner.tokens_total()
        self._start_kwh = node.energy.total_kwh if node.energy is not None else 0.0
        self._external_since: float | None = None
        self.external_active = False

    @property
    def n_threads(self) -> int:
        """The engine's threads (it may be resized or swapped), else the machine's CPUs."""
        return self._n_threads or self.runner.engine_threads() or os.process_cpu_count() or 1

    @property
    def events(self) -> EventHub:
        return self.node.events

    def on_sample(self, reading: HardwareReading, now: float) -> None:
        node, executor = self.node, self.executor
        dt_s = (
            node.settings.status_interval_s
            if self._last_sample is None
            else now - self._last_sample
        )
        self._last_sample = now
        state = self.safety.observe(
            reading,
            heat=node.heat,
            heat_refreshed_at=node.heat_refreshed_at,
            max_power_w=node.max_power_w,
            now=now,
        )
        node.set_effective_heat(state.heat)
        heat_wanted = state.heat.wanted
        config = node.config
        self.plan = plan = executor.planner.plan(
            executor.plannable(),
            now=executor.clock(),
            heat_wanted=heat_wanted,
            jobs_allowed=config.background_jobs,
            filler_allowed=config.filler,
        )
        engine = self._engines()
        external = self.runner.external_requests(executor.inflight)
        if external <= 0:
            self._external_since = None
        elif self._external_since is None:
            self._external_since = now
        external_forced = (
            self._external_since is not None
            and not heat_wanted
            and now - self._external_since >= self.external_wait_s
        )
        # Background requests over the API run with heat, or once they have waited long.
        self.external_active = external > 0 and (heat_wanted or external_forced)
        if plan.forced or external_forced:
            setpoint_w = node.max_power_w
        else:
            setpoint_w = min(state.heat.effective_w, node.max_power_w)
        has_work = bool(plan.run or plan.filler) or self.external_active
        intensity = self.governor.update(
            setpoint_w=setpoint_w,
            power_w=reading.power_w,
            dt_s=dt_s,
            # Not "and engine is not None": models load on their first item.
            has_work=has_work,
            blocked=state.background_blocked,
        )
        if state.background_blocked:
            knobs = PAUSED
        else:
            knobs = knobs_for(intensity, n_threads=self.n_threads, max_parallel=self.max_parallel)
            if knobs.max_background == 0 and not self.applier.knobs.paused:
                # Nothing to heat with now: the sequences running finish at the pace they
                # had, rather than at full power the moment heat is no longer wanted.
                knobs = replace(self.applier.knobs, max_background=0)
        self.applier.apply(engine, knobs)
        executor.account(
            dt_s=dt_s, power_w=reading.power_w, intensity=intensity, heat_wanted=heat_wanted
        )
        executor.update(plan, max_inflight=knobs.max_background)

    def _engines(self) -> BackgroundControl | None:
        """Every engine's knobs, and index work's (it paces itself by them)."""
        engine, index = self.runner.engine(), self.executor.index_work
        if index is None:
            return engine
        return AllEngines((index,) if engine is None else (engine, index))

    def _on_safety_event(self, event: SafetyEvent) -> None:
        self.events.publish("safety", event.as_dict())

    # --- status --------------------------------------------------------------------------

    def snapshot(self) -> HeatControlSnapshot:
        """Intensity, jobs, governor, safety and energy figures; reads only."""
        governor, executor = self.governor, self.executor
        pending = executor.pending
        reason = self.plan.reason
        return HeatControlSnapshot(
            intensity=governor.intensity,
            jobs=JobFigures(
                pending=len(pending),
                running=sum(1 for job in pending if job.state == "running"),
                background="requests" if reason == "idle" and self.external_active else reason,
                filler_items=executor.filler_items,
                index=(
                    None if executor.index_work is None else executor.index_work.figures(self.plan)
                ),
            ),
            governor=GovernorFigures(
                heat_target_w=self.node.effective_heat.effective_w,
                setpoint_w=governor.setpoint_w,
                error_w=governor.error_w,
                knobs=self.applier.knobs,
            ),
            safety=self.safety.snapshot(),
            energy=self._energy_figures(),
        )

    def _energy_figures(self) -> EnergyFigures:
        energy = self.node.energy
        total = energy.total_kwh if energy is not None else 0.0
        wanted = energy.wanted_kwh if energy is not None else 0.0
        reuse = energy.reuse if energy is not None else None
        # Counted from the heat service's start: the engines' token counter doesn't
        # survive restarts, the energy counter does.
        since_tokens = max(0, self.runner.tokens_total() - self._start_tokens)
        since_kwh = total - self._start_kwh
        return EnergyFigures(
            total_kwh=round(total, 4),
            wanted_kwh=round(wanted, 4),
            heat_reuse=round(reuse, 4) if reuse is not None else None,
            tokens_since_start=since_tokens,
            wh_per_1k_tokens=round(since_kwh * 1e6 / since_tokens, 3) if since_tokens else None,
        )
