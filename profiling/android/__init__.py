"""Latency on Android phones over adb: LiteRT's ``benchmark_model`` (binary or APK), ``onnxruntime_perf_test``.

- :mod:`profiling.android.adb`: the adb wrapper (devices, properties, push/pull, shell, clear errors);
- :mod:`profiling.android.parsers`: the tools' printed output -> numbers (both benchmark_model formats);
- :mod:`profiling.android.thermal`: battery and thermal-zone temperatures, cool-down waits;
- :mod:`profiling.android.runner`: push, run, parse, and a ``LatencyResult`` with the phone's fields;
- :mod:`profiling.android.cli`: ``python -m profiling android MODEL ...``.

Nothing here imports a runtime: the phone runs the model, this host only drives adb.
"""
