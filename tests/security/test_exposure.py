"""What an attacker can reach at all: local mode binds loopback only, compose publishes on 127.0.0.1 only.

What the sidecar cannot protect (lesson 04, "What the sidecar can't protect"):
an app's own port. In local mode it is on 127.0.0.1 like everything else, so
any local process can call the app directly, around its sidecar; these tests
pin down what does hold — nothing listens beyond loopback, and a compose
stack publishes nothing but the gateway and the control plane, on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
import yaml

from tests.support.stack import demo, running_stack, write_lesson

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]


def listening_addresses(pid: int) -> set[str]:
    """Every TCP address `pid` listens on, from /proc (IPv4 and IPv6)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                local, state, inode = parts[1], parts[3], parts[9]
                if state == "0A" and inode in inodes:  # 0A: LISTEN
                    hexaddr, port = local.split(":")
                    found.add(f"{_address(hexaddr, width)}:{int(port, 16)}")
    return found


def _address(hexaddr: str, width: int) -> str:
    raw = bytes.fromhex(hexaddr)
    # /proc prints each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw))



@pytest.fixture
def lesson(tmp_path):
    return write_lesson(tmp_path / "lesson", {"catalog": {"v1": demo("catalog")}}, gateway="catalog")


def test_local_mode_listens_on_loopback_only(lesson, tmp_path):
    with running_stack(lesson, tmp_path / "home") as stack:
        state = stack.state()
        listening = {name: listening_addresses(p["pid"]) for name, p in state["processes"].items() if p["pid"]}
        listening["supervisor"] = listening_addresses(state["supervisor_pid"])
        print(listening)
        assert all(listening.values()), f"a process listens nowhere: {listening}"
        wide = {name: [a for a in addrs if not a.startswith(("127.0.0.1:", "::1:"))]
                for name, addrs in listening.items()}
        assert not any(wide.values()), f"listening beyond loopback: {wide}"


@pytest.mark.parametrize("compose_file", sorted((REPO / "compose").glob("[0-9][0-9]-*.yaml")), ids=lambda p: p.name)
def test_compose_publishes_only_the_gateway_and_control_plane_on_loopback(compose_file):
    services = yaml.safe_load(compose_file.read_text())["services"]
    published = {name: svc["ports"] for name, svc in services.items() if svc.get("ports")}
    assert set(published) == {"control", "gateway"}, published
    for name, ports in published.items():
        assert all(str(p).startswith("127.0.0.1:") for p in ports), (name, ports)
    # No app container is published, and none runs in the host's network.
    assert not any(svc.get("network_mode") == "host" for svc in services.values())
