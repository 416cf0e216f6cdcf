"""Fakes and harnesses shipped with rayzig_core for tests: the gateway in a thread, a fake I2C kernel."""
