"""The control plane: registry, config store, watch API."""
