"""The sweep driver: the store's only writer while an engine runs the jobs, and ``--resume``.

A new sweep records its run and every measurement job (table ``jobs``, status ``pending``, the
job and the whole spec as its JSON) before the first job starts. Then it consumes the engine's
events as they come: a measurement is stored with its job marked ``done`` in one transaction; a
failure (export refused, tool error, worker or node died) marks the job ``failed`` with the reason;
a job that could not start (its phone was lost) is ``not_run``. Nothing measured waits for the end
of the sweep. ``resume`` reads a run's jobs back and runs only those not ``done``, with the spec
stored at its start, into the same run.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from export.artifact import git_commit
from profiling.artifacts import ensure_artifact
from profiling.store import Store, StoreError
from profiling.sweep.engines import Event
from profiling.sweep.plan import MeasureJob, Plan, SweepSpec
from profiling.result import new_run_id


@dataclass
class TargetCounts:
    """done / failed / not_run / remaining of one target."""

    total: int = 0
    done: int = 0
    failed: int = 0
    not_run: int = 0

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed - self.not_run


@dataclass
class SweepOutcome:
    """What a sweep (or a resume) did."""

    run_id: str
    planned: int  # jobs this invocation ran
    per_target: dict[str, TargetCounts]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (job key, reason), failed and not_run
    exports: Counter = field(default_factory=Counter)  # exported / reused / export_failed
    skipped: list[str] = field(default_factory=list)  # what the grid left out

    @property
    def done(self) -> int:
        return sum(c.done for c in self.per_target.values())

    def summary(self) -> str:
        return " · ".join(f"{target} {c.done} done {c.failed} failed {c.not_run} not run {c.remaining} left"
                          for target, c in self.per_target.items())


def start_sweep(store: Store, plan: Plan, command: str = "", run_id: str | None = None) -> str:
    """Record the run and its jobs (pending) before anything runs; returns the run id."""
    run_id = store.start_run(run_id or new_run_id(), label=plan.spec.label, command=command,
                             git_commit=git_commit(), device_name=f"sweep: {', '.join(dict.fromkeys(plan.spec.targets))}")
    spec = plan.spec.to_dict()
    store.plan_jobs(run_id, [(job.key, {"job": job.to_dict(), "sweep": spec}) for job in plan.jobs])
    return run_id


def resumable(store: Store, reference: str, exporter: Callable = ensure_artifact) -> tuple[str, Plan, int]:
    """(run id, the plan of its jobs not done, jobs in the run) of a sweep run."""
    run_id = store.find_run(reference)["run_id"]
    rows = store.jobs(run_id)
    if not rows or "sweep" not in rows[0]["spec"] or "export" not in rows[0]["spec"].get("job", {}):
        raise StoreError(f"run {run_id} is not a `profiling sweep` run (no sweep jobs recorded); "
                         "resume phone sweeps with `python -m profiling android --resume`")
    left = [row for row in rows if row["status"] != "done"]
    spec = SweepSpec.from_dict(rows[0]["spec"]["sweep"])
    jobs = [MeasureJob.from_dict(row["spec"]["job"]) for row in left]
    return run_id, Plan.of_jobs(spec, jobs, exporter), len(rows)


def drive(store: Store, run_id: str, plan: Plan, engine, on_event: Callable[[Event, SweepOutcome], None] | None = None
          ) -> SweepOutcome:
    """Run ``plan`` on ``engine``, writing every event to ``store`` as it arrives."""
    per_target = {target: TargetCounts() for target in dict.fromkeys(job.target for job in plan.jobs)}
    for job in plan.jobs:
        per_target[job.target].total += 1
    outcome = SweepOutcome(run_id, len(plan.jobs), per_target, skipped=list(plan.skipped))
    for event in engine.run(plan):
        if event.kind == "exported":
            outcome.exports["exported" if event.exported_now else "reused"] += 1
        elif event.kind == "export_failed":
            outcome.exports["export_failed"] += 1
        elif event.kind == "measured":
            event.result.run_id = run_id
            store.insert(event.result, job_key=event.key)
            per_target[event.job.target].done += 1
        else:
            store.set_job(run_id, event.key, event.kind, event.reason)
            setattr(per_target[event.job.target], event.kind, getattr(per_target[event.job.target], event.kind) + 1)
            outcome.failures.append((event.key, event.reason))
        if on_event is not None:
            on_event(event, outcome)
    return outcome
