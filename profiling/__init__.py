"""Real-latency profiling: the measurement protocol, runners, the results store, and reports.

- ``profiling.protocol``  ``MeasureSettings`` and ``run_protocol(step, settings)``: the one loop
- ``profiling.stats``     median (headline), percentiles, CV, trimmed mean, drift, unstable flag
- ``profiling.result``    ``LatencyResult`` and ``DeviceInfo``: what every runner returns
- ``profiling.store``     SQLite results store (``results/latency.db``), versioned schema
- ``profiling.runners``   one file per host runtime: ``measure(artifact, settings) -> LatencyResult``
- ``profiling.report``    markdown + PNG reports, run-to-run comparison
- ``python -m profiling`` the CLI (``run``, ``show``, ``report``, ``compare``, ...)

Runtimes (onnxruntime, ai_edge_litert, coremltools) are imported inside the runners, so
``import profiling`` never fails for a missing one.
"""
