"""The device codec: word and byte orders, round trips, read plans and write plans."""

from __future__ import annotations

import math
import struct
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from controller.core.errors import CommandRejected, ConfigError, ProtocolViolation
from protocols.devices.codec import (
    ReadRequest,
    decode,
    decode_point,
    encode_point,
    key,
    plan_reads,
    plan_writes,
)
from protocols.devices.profile import DeviceProfile, Format, Order, Point

ORDERS = [Order.BIG, Order.LITTLE]
WORD_FORMATS = [f for f in Format if f is not Format.BOOL]


def make_profile(points: dict[str, dict[str, Any]], **top: Any) -> DeviceProfile:
    return DeviceProfile.model_validate(
        {
            "name": "test_device",
            "kind": "meter",
            "description": "test",
            "source": {"manual": "test", "pages": "1"},
            "points": points,
            **top,
        }
    )


def make_point(**fields: Any) -> Point:
    return make_profile({"p": {"table": "holding", "address": 0, **fields}}).point("p")


# -- orders, by hand ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word_order", "byte_order", "words"),
    [
        # 0x12345678 as u32: the four arrangements a device may use.
        (Order.BIG, Order.BIG, [0x1234, 0x5678]),  # ABCD
        (Order.LITTLE, Order.BIG, [0x5678, 0x1234]),  # CDAB
        (Order.BIG, Order.LITTLE, [0x3412, 0x7856]),  # BADC
        (Order.LITTLE, Order.LITTLE, [0x7856, 0x3412]),  # DCBA
    ],
)
def test_u32_in_every_order(word_order: Order, byte_order: Order, words: list[int]) -> None:
    point = make_point(format="u32", word_order=word_order, byte_order=byte_order)
    assert decode_point(point, words, key("p")).value == 0x12345678
    assert encode_point(point, 0x12345678) == tuple(words)


@pytest.mark.parametrize(
    ("fmt", "words", "value"),
    [
        (Format.U16, [0xFFFE], 65534),
        (Format.S16, [0xFFFE], -2),
        (Format.S32, [0xFFFF, 0xFFFF], -1),
        (Format.U48, [0x1234, 0x5678, 0x9ABC], 0x1234_5678_9ABC),
        (Format.U64, [0x0000, 0x0000, 0x075B, 0xCD15], 123_456_789),
        (Format.S64, [0xFFFF, 0xFFFF, 0xFFFF, 0xFF85], -123),
        (Format.F32, [0xC2F6, 0xE979], -123.456),  # struct.pack(">f", -123.456).hex()
    ],
)
def test_formats_by_hand(fmt: Format, words: list[int], value: float) -> None:
    assert struct.pack(">f", -123.456).hex() == "c2f6e979"
    point = make_point(format=fmt)
    assert decode_point(point, words, key("p")).value == pytest.approx(value, rel=1e-7)


def test_f32_with_little_word_order() -> None:
    point = make_point(format="f32", word_order="little")
    assert decode_point(point, [0x199A, 0x4366], key("p")).value == pytest.approx(230.1)


def test_scale_offset_and_bit_fields() -> None:
    temperature = make_point(format="s16", scale=0.1, offset=-40)
    assert decode_point(temperature, [650], key("p")).value == pytest.approx(25.0)
    high_byte = make_point(shift=8, width=8)
    low_flags = make_point(width=8, flags={"a": 0, "b": 7})
    assert decode_point(high_byte, [0x5081], key("p")).value == 0x50
    reading = decode_point(low_flags, [0x5081], key("p"))
    assert (reading.value, dict(reading.flags)) == (0x81, {"a": True, "b": True})


# -- round trips -------------------------------------------------------------------------


def _raw_values(fmt: Format) -> st.SearchStrategy[float]:
    if fmt is Format.F32:
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    bits = fmt.bits
    if fmt.signed:
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return st.integers(0, (1 << bits) - 1)


@settings(max_examples=300)
@given(data=st.data(), fmt=st.sampled_from(WORD_FORMATS), word_order=st.sampled_from(ORDERS),
       byte_order=st.sampled_from(ORDERS))  # fmt: skip
def test_round_trip_every_format_and_order(
    data: st.DataObject, fmt: Format, word_order: Order, byte_order: Order
) -> None:
    point = make_point(format=fmt, word_order=word_order, byte_order=byte_order)
    value = data.draw(_raw_values(fmt))
    words = encode_point(point, value)
    assert len(words) == fmt.registers
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode_point(point, words, key("p")).value == value


@settings(max_examples=200)
@given(
    raw=st.integers(0, 65535),
    scale=st.sampled_from([0.1, 0.01, 0.001, 10.0, 0.5]),
    offset=st.sampled_from([0.0, -40.0, 100.0]),
)
def test_round_trip_scaled_integers(raw: int, scale: float, offset: float) -> None:
    point = make_point(scale=scale, offset=offset)
    value = decode_point(point, [raw], key("p")).value
    assert encode_point(point, value) == (raw,)


@given(bit=st.booleans())
def test_round_trip_bits(bit: bool) -> None:
    point = make_profile({"c": {"table": "coil", "address": 0, "write": 5}}).point("c")
    assert decode_point(point, list(encode_point(point, bit)), key("c")).value is bit


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(CommandRejected, match=r"outside 0\.0\.\.100\.0"):
        encode_point(make_point(min=0, max=100), 101)
    with pytest.raises(CommandRejected, match="does not fit u16"):
        encode_point(make_point(), 70000)
    with pytest.raises(CommandRejected, match="does not fit s16"):
        encode_point(make_point(format="s16"), -40000)
    with pytest.raises(CommandRejected, match="multiple of the scale"):
        encode_point(make_point(scale=0.1), 1.234)
    with pytest.raises(CommandRejected, match="finite"):
        encode_point(make_point(format="f32"), math.nan)
    with pytest.raises(CommandRejected, match="32-bit float"):
        encode_point(make_point(format="f32"), 1e39)


# -- read plans --------------------------------------------------------------------------


def test_points_of_different_function_codes_never_share_a_read() -> None:
    profile = make_profile(
        {
            "a": {"table": "input", "address": 0},
            "b": {"table": "holding", "address": 1},
            "c": {"table": "coil", "address": 2},
        }
    )
    plan = plan_reads(profile)
    assert sorted((r.function, r.address, r.count) for r in plan.reads) == [
        (1, 2, 1),
        (3, 1, 1),
        (4, 0, 1),
    ]


def test_unpolled_points_are_read_only_when_asked_for() -> None:
    profile = make_profile(
        {
            "a": {"table": "input", "address": 0},
            "b": {"table": "input", "address": 1, "poll": False},
        }
    )
    assert [r.keys for r in plan_reads(profile).reads] == [(key("a"),)]
    assert [r.count for r in plan_reads(profile, [key("a"), key("b")]).reads] == [2]


def test_keys_must_bind_exactly_the_point_variables() -> None:
    profile = make_profile(
        {"a": {"table": "input", "address": "10*sa"}}, variables={"sa": {"max": 63}}
    )
    with pytest.raises(ConfigError, match="must bind exactly"):
        plan_reads(profile, [key("a")])
    with pytest.raises(ConfigError, match=r"sa must be 0\.\.63"):
        plan_reads(profile, [key("a", sa=64)])
    with pytest.raises(ConfigError, match="no point named"):
        plan_reads(profile, [key("zz")])


def _laid_out(pieces: list[tuple[int, Format]]) -> list[tuple[int, Format]]:
    """Points one after another with the given holes between them (fixed points never overlap)."""
    out: list[tuple[int, Format]] = []
    end = 0
    for hole, fmt in pieces:
        out.append((end + hole, fmt))
        end += hole + fmt.registers
    return out


spans = st.lists(
    st.tuples(st.integers(0, 40), st.sampled_from([Format.U16, Format.U32, Format.U64])),
    min_size=1,
    max_size=60,
).map(_laid_out)


@settings(max_examples=200, deadline=None)
@given(points=spans, gap=st.integers(0, 30), limit=st.integers(4, 125))
def test_plan_covers_each_point_once_within_limits_and_is_minimal(
    points: list[tuple[int, Format]], gap: int, limit: int
) -> None:
    profile = make_profile(
        {f"p{a}": {"table": "input", "address": a, "format": f} for a, f in points},
        max_read_gap=gap,
        max_read_registers=limit,
    )
    plan = plan_reads(profile)
    seen = [k for r in plan.reads for k in r.keys]
    assert sorted(seen) == sorted(key(f"p{a}") for a, _ in points)
    for request in plan.reads:
        assert request.count <= limit
        for k in request.keys:
            point = profile.point(k.name)
            first = point.address_at({})
            assert request.address <= first
            assert first + point.count <= request.address + request.count
    ordered = sorted(plan.reads, key=lambda r: r.address)
    for before, after in pairwise(ordered):
        assert before.address + before.count <= after.address  # no overlap
        hole = after.address - (before.address + before.count)
        merged = after.address + after.count - before.address
        assert hole > gap or merged > limit


def test_bits_are_read_up_to_2000_per_request() -> None:
    profile = make_profile({f"c{i}": {"table": "coil", "address": i} for i in range(2500)})
    assert [(r.address, r.count) for r in plan_reads(profile).reads] == [(0, 2000), (2000, 500)]


# -- decoding answers --------------------------------------------------------------------


def test_short_or_missing_answers_are_protocol_violations() -> None:
    profile = make_profile({"a": {"table": "input", "address": 0, "format": "u32"}})
    plan = plan_reads(profile)
    with pytest.raises(ProtocolViolation, match="1 values for 2 requested"):
        decode(profile, plan.reads, [[1]])
    with pytest.raises(ProtocolViolation, match="0 answers for 1 reads"):
        decode(profile, plan.reads, [])
    request = ReadRequest(4, 0, 2, (key("a"),))
    assert decode(profile, [request], [[0, 7]])[key("a")].value == 7


# -- write plans -------------------------------------------------------------------------

WRITABLE = make_profile(
    {
        "a": {"table": "holding", "address": 10, "write": 16},
        "b": {"table": "holding", "address": 11, "write": 16},
        "c": {"table": "holding", "address": 12, "format": "u32", "write": 16},
        "d": {"table": "holding", "address": 20, "write": 6,
              "after_write": [{"point": "apply", "value": 1}]},
        "e": {"table": "holding", "address": 21, "write": 6,
              "after_write": [{"point": "apply", "value": 1}]},
        "apply": {"table": "holding", "address": 99, "write": 6},
        "ro": {"table": "input", "address": 0},
        # Formula points are not compared at load time, so this one may overlap b.
        "wide": {"table": "holding", "address": "11 + x", "format": "u32", "write": 16},
    },
    variables={"x": {"max": 0}},
    max_write_registers=3,
)  # fmt: skip


def test_adjacent_fc16_points_merge_up_to_the_write_limit() -> None:
    writes = plan_writes(WRITABLE, {key("c"): 0x10002, key("a"): 1, key("b"): 2})
    assert [(w.function, w.address, w.values) for w in writes] == [
        (16, 10, (1, 2)),  # a + b; adding c's two registers would pass 3
        (16, 12, (0x0001, 0x0002)),
    ]


def test_write_then_trigger_sends_the_trigger_once_after_the_writes() -> None:
    writes = plan_writes(WRITABLE, {key("e"): 5, key("d"): 4})
    assert [(w.function, w.address, w.values) for w in writes] == [
        (6, 20, (4,)),
        (6, 21, (5,)),
        (6, 99, (1,)),
    ]


def test_writes_refused() -> None:
    with pytest.raises(CommandRejected, match="ro is read-only"):
        plan_writes(WRITABLE, {key("ro"): 1})
    with pytest.raises(CommandRejected, match="overlaps"):
        plan_writes(WRITABLE, {key("b"): 1, key("wide", x=0): 2})


@given(values=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 65535)))
def test_every_written_value_is_in_exactly_one_request(values: dict[str, int]) -> None:
    assume(values)
    writes = plan_writes(WRITABLE, {key(n): v for n, v in values.items()})
    keys = [k for w in writes for k in w.keys]
    assert sorted(keys) == sorted(key(n) for n in values)
    memory: dict[int, int] = {}
    for w in writes:
        for i, word in enumerate(w.values):
            memory[w.address + i] = int(word)
    for name, value in values.items():
        point = WRITABLE.point(name)
        first = point.address_at({})
        words = [memory[first + i] for i in range(point.count)]
        assert decode_point(point, words, key(name)).value == value
