"""Core ML latency on Apple hardware: the Mac itself, and a USB-connected iPhone/iPad.

Both go through coremltools' experimental benchmarking (``coremltools.models.ml_program.experimental``):
``perf_utils.MLModelBenchmarker`` times model loads and predictions; on a phone,
``remote_device.Device.prepare_for_model_debugging`` first builds, signs and installs coremltools'
``modelrunner`` app with Xcode and ``xcrun devicectl``. Everything here needs macOS (Core ML does
not run elsewhere) and, for a phone, Xcode; on Linux the modules import fine and the commands say so.
See :mod:`profiling.ios.coreml_device` and ``python -m profiling ios --help``.
"""
