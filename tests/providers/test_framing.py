"""SSE and JSON-array stream framing, cut at arbitrary byte boundaries."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.providers._framing import JSONArrayDecoder, SSEDecoder


def _feed_in_pieces(decoder, data: bytes, cuts: list[int]) -> list:
    out, last = [], 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        out.extend(decoder.feed(data[last:cut]))
        last = cut
    if hasattr(decoder, "end"):
        out.extend(decoder.end())
    return out


events = st.lists(
    st.tuples(st.one_of(st.none(), st.sampled_from(["message_start", "content_block_delta", "ping"])),
              st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                      min_size=0, max_size=40)),
    min_size=1, max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(events, st.lists(st.integers(0, 10_000), max_size=12), st.sampled_from(["\n", "\r\n", "\r"]))
def test_sse_roundtrip_any_split_any_line_ending(evs, cuts, eol) -> None:
    wire = "".join(
        (f"event: {name}{eol}" if name else "") + f"data: {data}{eol}{eol}" for name, data in evs
    ).encode()
    got = _feed_in_pieces(SSEDecoder(), wire, cuts)
    assert got == [(name, data) for name, data in evs]


def test_sse_multiline_data_comments_and_missing_final_blank_line() -> None:
    wire = b": keep-alive\nid: 7\nevent: x\ndata: a\ndata: b\n\ndata: last"
    assert _feed_in_pieces(SSEDecoder(), wire, []) == [("x", "a\nb"), (None, "last")]


def test_sse_utf8_split_inside_a_character() -> None:
    wire = "data: héllo ✓\n\n".encode()
    assert _feed_in_pieces(SSEDecoder(), wire, [8, 9, 15]) == [(None, "héllo ✓")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=10)),
                                max_size=4), min_size=0, max_size=6),
       st.lists(st.integers(0, 10_000), max_size=12))
def test_json_array_roundtrip_any_split(values, cuts) -> None:
    wire = ("[" + ",\r\n".join(json.dumps(v) for v in values) + "]").encode()
    decoder = JSONArrayDecoder()
    assert _feed_in_pieces(decoder, wire, cuts) == values
    assert decoder.complete


def test_json_array_without_closing_bracket_is_incomplete() -> None:
    decoder = JSONArrayDecoder()
    assert list(decoder.feed(b'[{"a": 1},{"b"')) == [{"a": 1}]
    assert not decoder.complete
