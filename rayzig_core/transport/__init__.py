"""Transports that move protocol frames: TCP and I2C."""
