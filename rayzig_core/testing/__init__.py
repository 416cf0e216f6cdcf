"""Fakes and harnesses shipped with rayzig_core for tests: gateway thread, fake I2C kernel."""
