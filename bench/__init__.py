"""The performance harness: what a sidecar pair costs, measured against doing without and against HAProxy.

`python -m bench` (or `make bench`) runs every configuration side by side in
one run and writes bench/results/latest.json; bench/README.md says how to
read it and bench/RESULTS.md what it said last time.
"""
