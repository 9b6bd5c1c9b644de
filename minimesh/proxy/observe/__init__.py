"""Observing the data plane: metrics, tracing, the access log/tap and the rollups sent home."""
