"""Workload identity: the mesh CA and certificates."""
