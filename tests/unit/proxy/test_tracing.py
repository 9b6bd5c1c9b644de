"""W3C Trace Context Level 1 and B3 input: what a sidecar continues, restarts, keeps and drops."""

import random

import pytest
from hypothesis import given, strategies as st
from multidict import CIMultiDict

from minimesh.proxy.observe import tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


@pytest.mark.parametrize("value, expected", [
    (VALID, (TRACE, SPAN, 1)),
    (f"00-{TRACE}-{SPAN}-00", (TRACE, SPAN, 0)),
    (f" {VALID} ", (TRACE, SPAN, 1)),  # optional whitespace around the value
    # future versions: parse the version-00 fields, keep only the sampled bit
    (f"01-{TRACE}-{SPAN}-03", (TRACE, SPAN, 1)),
    (f"cc-{TRACE}-{SPAN}-01-what-the-future-holds", (TRACE, SPAN, 1)),
    # invalid: restart the trace
    (f"ff-{TRACE}-{SPAN}-01", None),  # version ff is forbidden
    (f"00-{TRACE}-{SPAN}-01-extra", None),  # version 00 has exactly four fields
    (f"cc-{TRACE}-{SPAN}-01extra", None),  # future version: the flags must end at a dash or the end
    (f"00-{'0' * 32}-{SPAN}-01", None),  # all-zero trace-id
    (f"00-{TRACE}-{'0' * 16}-01", None),  # all-zero parent-id
    (f"00-{TRACE.upper()}-{SPAN}-01", None),  # uppercase hex
    (f"00-{TRACE[:-1]}-{SPAN}-01", None),  # short trace-id
    (f"00-{TRACE}-{SPAN}-0g", None),  # flags not hex
    (f"00_{TRACE}_{SPAN}_01", None),
    (f"0-{TRACE}-{SPAN}-01", None),
    ("", None),
    ("garbage", None),
])
def test_traceparent(value, expected):
    assert tracing.parse_traceparent(value) == expected


@pytest.mark.parametrize("headers, expected", [
    (["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
    (["rojo=1", "congo=2"], "rojo=1,congo=2"),  # several headers combine in order
    ([" rojo = 1 , , congo=2 ,"], "congo=2"),  # OWS around members ok; 'rojo ' (space in key) is not a key
    (["rojo=1,,congo=2"], "rojo=1,congo=2"),  # empty members ignored
    (["Rojo=1,congo=2"], "congo=2"),  # keys are lowercase
    (["tenant@vendor=1,fw529a3039@dt=2"], "tenant@vendor=1,fw529a3039@dt=2"),  # multi-tenant keys
    (["a@toolongsystemidxx=1,b=2"], "b=2"),  # system-id at most 14 chars
    (["k=va,lue"], "k=va"),  # a comma ends a member; 'lue' has no '=' and goes
    (["k=a=b,x=1"], "x=1"),  # '=' is not allowed in a value
    (["k=trailing ,x=1"], "k=trailing,x=1"),  # trailing OWS is not part of the value
    (["k=,x=1"], "x=1"),  # an empty value is invalid
    (["dup=1,dup=2,x=3"], "dup=1,x=3"),  # a key appears once: the left-most wins
])
def test_tracestate(headers, expected):
    assert tracing.parse_tracestate(headers) == expected


def test_tracestate_keeps_at_most_32_members_dropping_from_the_right():
    members = [f"k{i}=v{i}" for i in range(40)]
    kept = tracing.parse_tracestate([",".join(members)]).split(",")
    assert kept == members[:32]


def test_oversized_tracestate_loses_big_members_first_then_from_the_right():
    big = "big=" + "x" * 200  # over 128 characters
    small = [f"k{i:02d}=" + "v" * 20 for i in range(25)]  # 24 characters each
    kept = tracing.parse_tracestate([",".join([small[0], big] + small[1:])])
    assert "big=" not in kept
    assert len(kept) <= 512
    members = kept.split(",")
    assert members == small[:len(members)]  # what is left is a prefix: dropped from the right
    assert len(members) == 20  # 20 x 24 + 19 commas = 499 <= 512; 21 would be 524


@pytest.mark.parametrize("headers, expected", [
    ({"b3": f"{TRACE}-{SPAN}-1"}, (TRACE, SPAN, True)),
    ({"b3": f"{TRACE}-{SPAN}-0-05e3ac9a4f6e3b90"}, (TRACE, SPAN, False)),
    ({"b3": f"{TRACE}-{SPAN}"}, (TRACE, SPAN, True)),
    ({"b3": f"a3ce929d0e0e4736-{SPAN}-d"}, ("0" * 16 + "a3ce929d0e0e4736", SPAN, True)),  # 64-bit id, debug
    ({"b3": "0"}, None),  # a sampling decision alone carries no context
    ({"b3": f"{TRACE}-{SPAN}-x"}, None),
    ({"b3": f"{'0' * 32}-{SPAN}-1"}, None),
    ({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "1"}, (TRACE, SPAN, True)),
    ({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "0"}, (TRACE, SPAN, False)),
    ({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "0", "x-b3-flags": "1"}, (TRACE, SPAN, True)),
    ({"x-b3-traceid": TRACE, "x-b3-spanid": "nothex"}, None),
])
def test_b3_input(headers, expected):
    parent = tracing.extract(CIMultiDict(headers))
    assert (parent and (parent.trace_id, parent.span_id, parent.sampled)) == expected or (
        expected is None and parent is None)


def hop(headers: CIMultiDict, rand) -> tuple[tracing.Parent | None, CIMultiDict]:
    """What a sidecar does at one hop: read the parent, start a span, write the headers on."""
    parent = tracing.extract(headers)
    if parent is None:
        trace_id, span_id = tracing.new_trace(rand)
    else:
        trace_id, span_id = parent.trace_id, tracing.new_span_id(rand)
    tracing.inject(headers, trace_id, span_id, parent)
    return parent, headers


def test_valid_traceparent_is_continued_with_a_new_parent_id_and_tracestate_kept():
    rand = random.Random(1)
    parent, out = hop(CIMultiDict({"traceparent": VALID, "tracestate": "rojo=1, congo=2"}), rand)
    version, trace_id, span_id, flags = out["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "01")
    assert span_id != SPAN and parent.span_id == SPAN
    assert out["tracestate"] == "rojo=1,congo=2"


@pytest.mark.parametrize("bad", [f"00-{'0' * 32}-{SPAN}-01", "00-nonsense", f"ff-{TRACE}-{SPAN}-01"])
def test_invalid_traceparent_starts_a_new_trace_and_drops_tracestate(bad):
    parent, out = hop(CIMultiDict({"traceparent": bad, "tracestate": "rojo=1"}), random.Random(2))
    assert parent is None
    assert tracing.parse_traceparent(out["traceparent"])[0] != TRACE
    assert "tracestate" not in out  # "MUST NOT attempt to parse tracestate" of an invalid traceparent


def test_two_traceparent_headers_are_invalid():
    headers = CIMultiDict([("traceparent", VALID), ("traceparent", VALID)])
    assert tracing.extract(headers) is None


def test_future_version_is_continued_but_sent_on_as_version_00():
    _, out = hop(CIMultiDict({"traceparent": f"cc-{TRACE}-{SPAN}-01-more"}), random.Random(3))
    assert out["traceparent"].startswith(f"00-{TRACE}-")


def test_b3_headers_are_rewritten_in_the_form_they_came():
    _, out = hop(CIMultiDict({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-parentspanid": "1" * 16}),
                 random.Random(4))
    new_span = out["traceparent"].split("-")[2]
    assert (out["x-b3-traceid"], out["x-b3-spanid"], out["x-b3-sampled"]) == (TRACE, new_span, "1")
    assert "x-b3-parentspanid" not in out


hexes = st.text(alphabet="0123456789abcdef", min_size=0, max_size=40)


@given(st.text(max_size=80))
def test_traceparent_never_crashes_and_only_accepts_what_it_can_write_back(value):
    parsed = tracing.parse_traceparent(value)
    if parsed is not None:
        trace_id, span_id, flags = parsed
        assert tracing.parse_traceparent(f"00-{trace_id}-{span_id}-{flags:02x}") == parsed


@given(hexes, hexes, st.sampled_from(["00", "01", "ff", "0a"]))
def test_traceparent_accepts_exactly_the_well_formed(trace_id, span_id, flags):
    ok = len(trace_id) == 32 and len(span_id) == 16 and set(trace_id) != {"0"} and set(span_id) != {"0"}
    assert (tracing.parse_traceparent(f"00-{trace_id}-{span_id}-{flags}") is not None) == ok


@given(st.lists(st.text(max_size=300), max_size=5))
def test_tracestate_output_always_obeys_the_limits(headers):
    out = tracing.parse_tracestate(headers)
    assert len(out) <= 512
    members = out.split(",") if out else []
    assert len(members) <= 32
    keys = [m.split("=", 1)[0] for m in members]
    assert len(keys) == len(set(keys))
    assert tracing.parse_tracestate([out]) == out  # normalised output is a fixed point
