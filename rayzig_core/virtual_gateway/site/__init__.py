"""The simulated mesh behind the virtual gateway (PROTOCOL.md §4, §8).

Modules, the mesh's physics and timing, and every module's event-log ring.
"""
