"""The bench harness in its tiny mode: it runs, and its JSON has the promised shape.

The figures themselves are never asserted — a noisy 2-core box decides them.
What is checked is that every configuration is either measured with all of
its figures or listed as not measured with a reason, and that the goals are
judged for the sidecar pair.
"""

import json
import subprocess
import sys

import jsonschema

from tests.support.stack import REPO

SCHEMA = json.loads((REPO / "bench" / "schema.json").read_text())


def test_quick_bench_writes_every_configurations_figures(tmp_path):
    out = tmp_path / "latest.json"
    r = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)  # ~110 s at load 20 on 2 cores
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    jsonschema.validate(result, SCHEMA)

    rows = {row["name"]: row for row in result["configurations"]}
    # direct, the bare relay pair (plaintext and mutual TLS) and the plaintext sidecar pair always
    # run; their requests all succeeded.
    for name in ("direct", "relay", "relay-mtls", "minimesh"):
        assert rows[name]["measured"], rows[name]
        assert rows[name]["latency"]["completed"] == rows[name]["latency"]["sent"]
        assert rows[name]["throughput"]["requests"] > 0 and not rows[name]["throughput"]["errors"]
    # Each sidecar of the pair was watched: two proxies, each with CPU and memory figures.
    for name in ("relay", "minimesh"):
        assert sorted(p["role"] for p in rows[name]["proxies"]) == ["inbound", "outbound"]
    assert rows["direct"]["added"] == {"p50_ms": 0.0, "p99_ms": 0.0}
    # Every goal is judged for the sidecar pair, and the table printed them.
    judged = {g["metric"] for g in result["goals"] if g["configuration"] == "minimesh"}
    assert judged == {"added_p50_ms", "added_p99_ms", "throughput_vs_haproxy",
                      "cpu_s_per_1k_per_sidecar", "peak_rss_mb_per_sidecar"}
    assert "goals (first version" in r.stdout and "minimesh" in r.stdout
    # Whatever was not measured says why, in the JSON and in the table.
    for missing in result["not_measured"]:
        assert missing["why"] and f"{missing['configuration']}" in r.stdout
