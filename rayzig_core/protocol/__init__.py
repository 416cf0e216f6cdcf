"""Sans-I/O protocol core: frames, Noise session and message codec (no asyncio, no smbus2)."""
