"""The registry with a fake clock: heartbeats, generations, expiry — no real sleeping."""

import pytest

from minimesh.control.registry import InvalidRegistration, Registry, parse_registration


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def reg(instance="pricing-v1-0", inbound="127.0.0.1:7001", **extra):
    body = {"service": "pricing", "version": "v1", "instance": instance, "kind": "sidecar",
            "addresses": {"app": "127.0.0.1:7000", "inbound": inbound, "outbound": None, "admin": "127.0.0.1:7002"}}
    return parse_registration({**body, **extra})


def test_heartbeat_keeps_an_instance_alive_and_does_not_bump_generation():
    clock = FakeClock()
    registry = Registry(ttl=3.0, clock=clock)
    assert registry.register(reg()) is True
    assert registry.generation == 1
    # The same call every second is a heartbeat: no change a watcher must hear of.
    for _ in range(10):
        clock.now += 1.0
        assert registry.register(reg()) is False
        assert registry.expire() == []
    assert registry.generation == 1
    assert [i.name for i in registry.instances()] == ["pricing-v1-0"]


def test_silent_instance_expires_after_ttl_and_bumps_generation():
    clock = FakeClock()
    registry = Registry(ttl=3.0, clock=clock)
    registry.register(reg("a"))
    registry.register(reg("b"))
    clock.now += 2.0
    registry.register(reg("b"))  # only b heartbeats
    clock.now += 1.5             # a silent 3.5 s, b 1.5 s
    expired = registry.expire()
    assert [i.name for i in expired] == ["a"]
    assert [i.name for i in registry.instances()] == ["b"]
    assert registry.generation == 3


def test_exactly_ttl_silence_is_not_yet_expired():
    clock = FakeClock()
    registry = Registry(ttl=3.0, clock=clock)
    registry.register(reg())
    clock.now += 3.0
    assert registry.expire() == []


def test_changed_addresses_bump_generation_but_keep_age():
    clock = FakeClock()
    registry = Registry(ttl=3.0, clock=clock)
    registry.register(reg())
    clock.now += 1.0
    assert registry.register(reg(inbound="127.0.0.1:9999")) is True
    inst = registry.get("pricing-v1-0")
    assert inst.registration.addresses["inbound"] == "127.0.0.1:9999"
    assert inst.to_json(clock.now)["age_s"] == 1.0


def test_deregister_unknown_is_none_and_changes_nothing():
    registry = Registry(ttl=3.0, clock=FakeClock())
    assert registry.deregister("ghost") is None
    assert registry.generation == 0


def test_labels_always_carry_app_and_version():
    r = reg(labels={"tier": "backend"})
    assert r.labels == {"tier": "backend", "app": "pricing", "version": "v1"}


@pytest.mark.parametrize("body, complaint", [
    ([], "JSON object"),
    ({"version": "v1", "instance": "x"}, "'service'"),
    ({"service": "a", "version": "", "instance": "x"}, "'version'"),
    ({"service": "a", "version": "v1", "instance": "x", "kind": "daemon"}, "kind"),
    ({"service": "a", "version": "v1", "instance": "x", "labels": {"a": 1}}, "labels"),
    ({"service": "a", "version": "v1", "instance": "x", "addresses": {"metrics": "h:1"}}, "metrics"),
    ({"service": "a", "version": "v1", "instance": "x", "addresses": {"inbound": 15006}}, "addresses.inbound"),
])
def test_bad_registrations_are_refused_with_a_reason(body, complaint):
    with pytest.raises(InvalidRegistration, match=complaint):
        parse_registration(body)
