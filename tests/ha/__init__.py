"""Tests of the Rayzig Home Assistant integration against the real virtual gateway."""
