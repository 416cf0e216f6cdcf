"""The harness of the Home Assistant-level benchmarks (``benchmarks/ha_*.py``).

A real Home Assistant 2025.4.4 built in-process the way its bootstrap builds one (no pytest, no
test patches), the Rayzig integration loaded from ``custom_components/rayzig`` against a real
virtual gateway running in a child process, and the probes that measure it (state writes, command
latency, RSS). Method and results: docs/PERFORMANCE.md, "Home Assistant level".
"""
