"""Latency expectations, and why lesson 02's per-try-timeout step checks p80, not p95.

With payments-v1-1 taking 1 s and a 300 ms per-try timeout, a checkout's latency has modes:
no try at v1-1 (~20 ms), one abandoned try (~320 ms), two (~640 ms), three (~960 ms). web's
access log on a loaded 2-core box (load average ~20) counted 54.8 % / 33.7 % / 8.4 % / 3.1 %
of 900 checkouts; a quiet one has fewer double visits. p95 falls on the boundary of the
two-timeout mode, so it swings between ~350 ms and ~900 ms with how often least-request happens
to send a retry to the slow instance again (484 ms in the README's run, 857 ms in a loaded CI),
while p80 stays in the one-timeout mode with a wide margin — and is still over 1 s without a
per-try timeout, when every checkout that touches v1-1 (~45 %) waits its full second.
"""

import pytest

from minimesh.lesson.check import judge
from minimesh.lesson.traffic import Answer, Traffic


def checkouts(shares: dict[float, int]) -> Traffic:
    return Traffic([Answer(200, ms) for ms, n in shares.items() for _ in range(n)])


LOADED = {20.0: 164, 330.0: 101, 660.0: 26, 990.0: 9}  # the modes, in the loaded box's proportions of 300
NO_PER_TRY_TIMEOUT = {20.0: 165, 1020.0: 135}  # each checkout that touches v1-1 waits its full second


@pytest.mark.parametrize("traffic, kind, ok, measured", [
    (checkouts(LOADED), "latency_p80_ms", True, "measured 330 ms"),
    (checkouts(LOADED), "latency_p95_ms", False, "measured 660 ms"),  # the same run, on the mode boundary
    (checkouts(NO_PER_TRY_TIMEOUT), "latency_p80_ms", False, "measured 1020 ms"),
])
def test_lesson_02_step_3_checks_the_percentile_clear_of_the_second_mode(traffic, kind, ok, measured):
    v = judge(kind, {"max": 600}, traffic, None)
    assert (v.ok, v.detail) == (ok, measured)
    assert v.what == f"{kind.split('_')[1]} latency under 600 ms"
