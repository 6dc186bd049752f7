"""Sweeps: a grid (models x formats x precisions x threads x targets) measured on one machine or a Ray cluster.

- :mod:`profiling.sweep.plan`    the grid (a TOML spec or the same as flags) expanded into export jobs,
  deduplicated by (model, format, precision, input size, weights), and measurement jobs per target;
- :mod:`profiling.sweep.work`    what one job does: export (reusing artifacts on disk) and ship the
  artifact, or measure it on a host runtime or a phone (the runners do not know who called them);
- :mod:`profiling.sweep.engines` where jobs run: ``local`` (in this process, in order) or ``ray``
  (exports as CPU tasks, phones as ``device:<serial>`` resources, host measurements on a whole node);
- :mod:`profiling.sweep.driver`  the store's single writer: plans the jobs into the ``jobs`` table,
  stores results as they stream back, marks failures with their reason, resumes a run;
- :mod:`profiling.sweep.cli`     ``python -m profiling sweep``; :mod:`profiling.sweep.report` its report.
"""
