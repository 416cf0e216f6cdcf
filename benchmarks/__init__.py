"""Benchmarks of rayzig_core against the physical limit of the modelled I2C bus.

Method and results: docs/PERFORMANCE.md.

Not tests: nothing here asserts a time. Run one with ``.venv/bin/python -m benchmarks.<name>`` or
all of them (and refresh the results table of docs/PERFORMANCE.md) with
``.venv/bin/python benchmarks/run_all.py``.
"""
