"""Fault injection (fault.py) and mirroring (mirror.py), with fake inner layers: no sockets, no sleeping."""

import asyncio
import random

import pytest
from multidict import CIMultiDict

from minimesh.errors import FaultAbort, UpstreamConnectFailure
from minimesh.proxy.outbound.fault import InjectFault, roll
from minimesh.proxy.message import Journey, Request, Response
from minimesh.proxy.outbound.mirror import Mirror
from minimesh.proxy.snapshot import parse_snapshot
from tests.unit.proxy.manifests import dr_doc, route, vs, vs_doc


def request_on(http_route, body=b"{}", config=None) -> Request:
    journey = Journey("outbound", service="pricing", route=http_route.name, http_route=http_route, config=config)
    return Request("POST", "/prices", "pricing", CIMultiDict(), body, journey=journey)


class Inner:
    def __init__(self):
        self.calls = 0

    async def __call__(self, request):
        self.calls += 1
        return Response(200, CIMultiDict(), b"real")


class Sleeps:
    def __init__(self):
        self.slept = []

    async def __call__(self, seconds):
        self.slept.append(seconds)


def fault_route(**fault):
    return vs("pricing", route("r", host="pricing", fault=fault)).http[0]


@pytest.mark.parametrize("percentage, seed, expected", [(100, 0, True), (0, 0, False)])
def test_roll_extremes(percentage, seed, expected):
    assert all(roll(percentage, random.Random(seed + i)) is expected for i in range(100))


def test_roll_takes_its_share():
    rand = random.Random(7)
    hits = sum(roll(25, rand) for _ in range(20_000))
    assert 0.23 <= hits / 20_000 <= 0.27  # 25 % ± 8 standard deviations of 0.3 %


async def test_delay_waits_the_fixed_delay_and_flags_di():
    sleeps, inner = Sleeps(), Inner()
    req = request_on(fault_route(delay={"fixedDelay": "2s", "percentage": {"value": 100}}))
    response = await InjectFault(inner, sleep=sleeps)(req)
    assert (response.status, inner.calls, sleeps.slept) == (200, 1, [2.0])
    assert req.journey.flags == ["DI"]


async def test_abort_answers_itself_and_never_reaches_the_upstream():
    inner = Inner()
    req = request_on(fault_route(abort={"httpStatus": 418, "percentage": {"value": 100}}))
    with pytest.raises(FaultAbort) as caught:
        await InjectFault(inner, sleep=Sleeps())(req)
    assert (caught.value.status, caught.value.flag, inner.calls) == (418, "FI", 0)


async def test_abort_share_follows_the_percentage():
    inner = Inner()
    layer = InjectFault(inner, sleep=Sleeps(), rand=random.Random(3))
    route_ = fault_route(abort={"httpStatus": 503, "percentage": {"value": 30}})
    aborted = 0
    for _ in range(2000):
        try:
            await layer(request_on(route_))
        except FaultAbort:
            aborted += 1
    assert 0.26 <= aborted / 2000 <= 0.34 and inner.calls == 2000 - aborted


async def test_no_fault_block_passes_straight_through():
    sleeps, inner = Sleeps(), Inner()
    await InjectFault(inner, sleep=sleeps)(request_on(vs("pricing", route("r", host="pricing")).http[0]))
    assert (inner.calls, sleeps.slept) == (1, [])


# --- mirror ------------------------------------------------------------------


class RecordingPool:
    """Stands in for UpstreamPool at the last hop: records what the mirror sent where."""

    mtls = None

    def __init__(self, fail=False):
        self.sent = []
        self.fail = fail

    async def send(self, address, request, tls=None):
        self.sent.append((address, request.authority, request.method, request.body))
        if self.fail:
            raise UpstreamConnectFailure("mirror is down")
        return Response(500, CIMultiDict(), b"ignored")


def mesh_config():
    return parse_snapshot({
        "version": "1", "config_version": 1,
        "resources": [dr_doc("pricing", [{"name": "v2", "labels": {"version": "v2"}}])],
        "services": {"pricing": {"endpoints": [
            {"instance": "pricing-v1-0", "address": "127.0.0.1:7001", "labels": {"app": "pricing", "version": "v1"}},
            {"instance": "pricing-v2-0", "address": "127.0.0.1:7002", "labels": {"app": "pricing", "version": "v2"}},
        ]}},
    })


def mirror_route(percentage=None):
    extra = {"mirror": {"host": "pricing", "subset": "v2"}}
    if percentage is not None:
        extra["mirrorPercentage"] = {"value": percentage}
    return vs("pricing", route("r", host="pricing", **extra)).http[0]


async def settle(layer):
    while layer._shadows:
        await asyncio.gather(*layer._shadows)


async def test_mirror_sends_a_shadow_copy_to_the_subset_and_the_real_answer_is_untouched():
    pool, inner = RecordingPool(), Inner()
    layer = Mirror(inner, pool)
    response = await layer(request_on(mirror_route(), body=b'{"x":1}', config=mesh_config()))
    await settle(layer)
    assert (response.status, response.body, inner.calls) == (200, b"real", 1)
    assert pool.sent == [("127.0.0.1:7002", "pricing-shadow", "POST", b'{"x":1}')]


async def test_a_failing_mirror_never_fails_the_request():
    pool, inner = RecordingPool(fail=True), Inner()
    layer = Mirror(inner, pool)
    response = await layer(request_on(mirror_route(), config=mesh_config()))
    await settle(layer)
    assert response.status == 200 and len(pool.sent) == 1


async def test_mirror_percentage_and_streaming_bodies():
    pool = RecordingPool()
    layer = Mirror(Inner(), pool, rand=random.Random(11))
    for _ in range(1000):
        await layer(request_on(mirror_route(percentage=20), config=mesh_config()))
    await settle(layer)
    assert 0.16 <= len(pool.sent) / 1000 <= 0.24

    async def stream():
        yield b"chunk"
    pool.sent.clear()
    await layer(request_on(mirror_route(), body=stream(), config=mesh_config()))
    await settle(layer)
    assert pool.sent == []  # a body that streams through once cannot be copied


def test_the_manifests_used_here_are_real_istio():
    from tests.istio_schema import validate_istio
    doc = vs_doc("pricing", route("r", host="pricing", mirror={"host": "pricing", "subset": "v2"},
                                  mirrorPercentage={"value": 20.0},
                                  fault={"abort": {"httpStatus": 418, "percentage": {"value": 30}}}))
    assert validate_istio(doc) == []
