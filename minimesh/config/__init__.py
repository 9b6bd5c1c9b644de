"""Istio's configuration language, the subset minimesh speaks."""
