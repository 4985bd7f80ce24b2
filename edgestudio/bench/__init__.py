"""Measurement: latency, accuracy and parity, as pure functions (runtime, data, report, cancel). Qt-free."""
