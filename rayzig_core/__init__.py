"""Rayzig core: secure protocol, client, virtual gateway, bridge and CLI for Rayzig meshes."""
