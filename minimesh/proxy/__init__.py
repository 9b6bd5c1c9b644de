"""The data plane: sidecars and the gateway."""
