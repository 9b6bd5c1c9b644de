"""Free ports: distinct, really free, and a taken one reported in one line."""

import socket

import pytest

from minimesh.errors import UserError
from minimesh.runner.ports import GATEWAY_HINT, PortAllocator, ensure_free, is_free, is_listening


def test_allocator_hands_out_distinct_free_ports():
    ports = PortAllocator()
    given = [ports.allocate() for _ in range(50)]
    assert len(set(given)) == 50
    assert all(is_free(p) for p in given[:5])


def test_reserved_port_is_never_handed_out():
    ports = PortAllocator()
    first = ports.allocate()
    again = PortAllocator()
    again.reserve(first)
    assert first not in {again.allocate() for _ in range(50)}


def test_a_listening_port_is_not_free_and_ensure_free_says_so_in_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert is_listening(port) and not is_free(port)
        with pytest.raises(UserError) as err:
            ensure_free(port, "gateway", GATEWAY_HINT)
    assert str(err.value) == (f"port {port} is already in use (gateway); stop whatever holds it, "
                              "or choose another port: `minimesh up LESSON_DIR --port 8081` "
                              "(or `make demo PORT=8081`; --port 0 takes any free port)")
    assert not is_listening(port)
