"""Where a sweep's jobs run: ``local`` (this process, one job at a time) or ``ray`` (a Ray cluster).

An engine turns a :class:`~profiling.sweep.plan.Plan` into a stream of :class:`Event` as jobs
finish; it never writes the store (the driver does, alone). Both engines call the same
:mod:`profiling.sweep.work` functions, so a grid gives the same rows on either.

Ray: each export is an ordinary task (``num_cpus=1``) whose artifact travels through the object
store to the task that measures it (sha256 checked on arrival). A phone job asks for the custom
resource ``device:<serial>`` = 1, which only the host the phone is plugged into advertises
(``ray start --resources "$(python -m profiling android --ray-resources)"``), so Ray's scheduler
never runs two jobs on one phone. A host job asks for a whole node's CPUs (``host_cpus``, default
the largest node's count), so nothing else runs beside it. Tasks are not retried (a measurement
half-done on a phone is not repeated behind the user's back): a task whose worker or node died is
a failed job with that reason. A phone that is lost (the tool saw it go, or no node advertises its
resource any more) gets no more work: its jobs still queued are cancelled and reported ``not_run``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

from profiling.result import LatencyResult
from profiling.sweep import work
from profiling.sweep.plan import HOST, MeasureJob, Plan

ENGINES = ("local", "ray")
POLL_S = 1.0  # how often the Ray engine looks for lost resources while nothing finishes


@dataclass
class Event:
    """Something that finished: ``exported`` / ``export_failed`` (key: an export key) or ``measured`` /
    ``failed`` / ``not_run`` (key: a job key, ``job`` set)."""

    kind: str
    key: str
    job: MeasureJob | None = None
    result: LatencyResult | None = None
    reason: str = ""
    exported_now: bool | None = None  # exported: whether it was exported now (False: reused from disk)


def _describe(error: BaseException) -> str:
    cause = getattr(error, "cause", None)  # ray's RayTaskError carries the task's own exception
    error = cause if isinstance(cause, BaseException) else error
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class LocalEngine:
    """Every job in this process, in plan order: an export, then the measurements that use it."""

    name = "local"

    def run(self, plan: Plan) -> Iterator[Event]:
        lost: dict[str, str] = {}  # target -> why it is gone
        for export in plan.exports:
            jobs = plan.jobs_of(export)
            for job in (j for j in jobs if j.target in lost):
                yield Event("not_run", job.key, job, reason=lost[job.target])
            jobs = [j for j in jobs if j.target not in lost]
            if not jobs:
                continue
            try:
                shipped = work.export(export, plan.spec, plan.exporter, ship=False)
            except Exception as error:
                reason = _describe(error)
                yield Event("export_failed", export.key, reason=reason)
                for job in jobs:
                    yield Event("failed", job.key, job, reason=f"export failed: {reason}")
                continue
            yield Event("exported", export.key, exported_now=shipped.exported_now)
            for job in jobs:
                if job.target in lost:
                    yield Event("not_run", job.key, job, reason=lost[job.target])
                    continue
                try:
                    result = work.measure(job, plan.spec, shipped)
                except work.PhoneLost as error:
                    lost[job.target] = f"phone lost earlier in the sweep ({error})"
                    yield Event("failed", job.key, job, reason=_describe(error))
                except Exception as error:
                    yield Event("failed", job.key, job, reason=_describe(error))
                else:
                    yield Event("measured", job.key, job, result=result)


def _export_task(export, spec, exporter):
    return work.export(export, spec, exporter, ship=True)


def _measure_task(job, spec, shipped):
    return work.measure(job, spec, shipped)


def device_resource(serial: str) -> str:
    """The Ray custom resource a phone is: one unit, advertised by the host it is plugged into."""
    return f"device:{serial}"


class RayEngine:
    """Jobs as Ray tasks on the cluster at ``address`` (None: the one this process joined, or a local one)."""

    name = "ray"

    def __init__(self, address: str | None = None, host_cpus: float | None = None):
        self.address = address
        self.host_cpus = host_cpus

    def _connect(self):
        import ray
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        return ray

    def _resources_of(self, ray, job: MeasureJob) -> dict:
        if job.target == HOST:
            return {"num_cpus": self._whole_node(ray)}
        return {"num_cpus": 0, "resources": {device_resource(job.serial): 1}}

    def _whole_node(self, ray) -> float:
        if self.host_cpus is None:
            self.host_cpus = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=1)
        return self.host_cpus

    def _missing(self, ray, targets: set[str]) -> dict[str, str]:
        """Targets no alive node can run now: target -> why."""
        alive = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        missing = {}
        for target in targets:
            if target == HOST:
                if not any(r.get("CPU", 0) >= self._whole_node(ray) for r in alive):
                    missing[target] = f"no alive node has {self._whole_node(ray):g} CPUs for a host measurement"
            elif not any(r.get(device_resource(target.split(":", 1)[1]), 0) >= 1 for r in alive):
                missing[target] = (f"no alive node advertises {device_resource(target.split(':', 1)[1])} "
                                   "(phone unplugged, or its host left the cluster)")
        return missing

    def run(self, plan: Plan) -> Iterator[Event]:
        ray = self._connect()
        export_task = ray.remote(_export_task).options(num_cpus=1, max_retries=0)
        measure_task = ray.remote(_measure_task)
        lost = self._missing(ray, {job.target for job in plan.jobs})
        export_refs, exports = {}, {}
        for export in plan.exports:
            if any(job.target not in lost for job in plan.jobs_of(export)):
                ref = export_task.remote(export, plan.spec, plan.exporter)
                export_refs[export.key], exports[ref] = ref, export
        jobs = {}
        for job in plan.jobs:
            if job.target in lost:
                yield Event("not_run", job.key, job, reason=lost[job.target])
                continue
            options = self._resources_of(ray, job)
            ref = measure_task.options(max_retries=0, **options).remote(job, plan.spec, export_refs[job.export.key])
            jobs[ref] = job
        failed_exports: dict[str, str] = {}
        last_check = time.monotonic()
        while exports or jobs:
            ready, _ = ray.wait(list(exports) + list(jobs), num_returns=1, timeout=POLL_S)
            for ref in ready:
                if ref in exports:
                    export = exports.pop(ref)
                    try:
                        shipped = ray.get(ref)
                    except Exception as error:
                        failed_exports[export.key] = _describe(error)
                        yield Event("export_failed", export.key, reason=failed_exports[export.key])
                    else:
                        yield Event("exported", export.key, exported_now=shipped.exported_now)
                    continue
                job = jobs.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as error:
                    if job.export.key in failed_exports:
                        yield Event("failed", job.key, job, reason=f"export failed: {failed_exports[job.export.key]}")
                        continue
                    reason = _describe(error)
                    yield Event("failed", job.key, job, reason=reason)
                    if isinstance(error, work.PhoneLost) or "PhoneLost" in reason:
                        yield from self._drop(ray, jobs, job.target, f"phone lost earlier in the sweep ({reason})")
                else:
                    yield Event("measured", job.key, job, result=result)
            if not ready or time.monotonic() - last_check > 5 * POLL_S:
                last_check = time.monotonic()
                pending_targets = {job.target for job in jobs.values()}
                for target, why in self._missing(ray, pending_targets).items():
                    yield from self._drop(ray, jobs, target, why)

    def _drop(self, ray, jobs: dict, target: str, why: str) -> Iterator[Event]:
        """Cancel the queued jobs of ``target`` and report them not run."""
        for ref, job in list(jobs.items()):
            if job.target == target:
                ray.cancel(ref)
                del jobs[ref]
                yield Event("not_run", job.key, job, reason=why)


def make_engine(name: str, address: str | None = None, host_cpus: float | None = None):
    if name == "ray":
        return RayEngine(address, host_cpus)
    return LocalEngine()
