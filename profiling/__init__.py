"""Real-latency profiling: the measurement protocol, runners, the results store, and reports."""
