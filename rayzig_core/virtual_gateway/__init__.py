"""Gateway side of the protocol: the virtual gateway and the secrets a gateway keeps."""
