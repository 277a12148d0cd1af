"""Hypothesis strategies for frames: valid experimance requests, and malformed frames that say why they are.

Every malformed strategy yields ``(frame, reasons)``: the bytes, and the FrameError reasons a correct decoder
may give for them. They are malformed by construction, so the test oracle does not depend on the decoder.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from serve_app.experimance.protocol import KNOWN_MESSAGE_TYPES
from tests.experimance._core import BIOMES, ERAS

MAX_FRAME = 4096
MAX_SIZE = 2048
REQUIRED = ("request_id", "prompt", "era", "biome")

Case = tuple[bytes, frozenset[str]]

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
_containers = st.lists(_scalars, min_size=1, max_size=3) | st.dictionaries(
    st.text(max_size=4), _scalars, min_size=1, max_size=2
)


def _encode(value: object) -> bytes:
    return json.dumps(value).encode("utf-8")


def _case(frame: bytes, *reasons: str) -> Case:
    if len(frame) > MAX_FRAME:
        return frame, frozenset({"oversize"})
    return frame, frozenset(reasons)


valid_bodies = st.fixed_dictionaries(
    {
        "type": st.just("RenderRequest"),
        "request_id": st.uuids().map(str),
        "prompt": st.text(max_size=40),
        "era": st.sampled_from(ERAS),
        "biome": st.sampled_from(BIOMES),
    },
    optional={
        "generator": st.none() | st.text(max_size=10),
        "negative_prompt": st.none() | st.text(max_size=20),
        "width": st.none() | st.integers(8, MAX_SIZE),
        "height": st.none() | st.integers(8, MAX_SIZE),
        "style": st.none() | st.text(max_size=10),
        "seed": st.none() | st.integers(-(2**70), 2**70),
        "depth_map": st.none(),
        "reference_image": st.none(),
        "unknown_field": json_values,
    },
)
"""Requests the experimance schema accepts."""


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def _mis_case(name: str) -> st.SearchStrategy[str]:
    variants = {name.upper(), name.title(), name.capitalize(), name.replace("_", "-")} - {name}
    return st.sampled_from(sorted(variants))


@st.composite
def _missing_field(draw: st.DrawFn) -> Case:
    body = draw(valid_bodies)
    del body[draw(st.sampled_from(REQUIRED))]
    return _case(_encode(body), "missing_field")


@st.composite
def _mis_cased_key(draw: st.DrawFn) -> Case:
    body = draw(valid_bodies)
    key = draw(st.sampled_from(REQUIRED))
    body[draw(_mis_case(key))] = body.pop(key)
    return _case(_encode(body), "missing_field")


@st.composite
def _bad_enum(draw: st.DrawFn) -> Case:
    body = draw(valid_bodies)
    key = draw(st.sampled_from(("era", "biome")))
    allowed = ERAS if key == "era" else BIOMES
    body[key] = draw(_mis_case(body[key]) | st.text(max_size=12).filter(lambda t: t not in allowed))
    return _case(_encode(body), "invalid_field")


@st.composite
def _wrong_type(draw: st.DrawFn) -> Case:
    body = draw(valid_bodies)
    body["type"] = draw(
        st.sampled_from(sorted(KNOWN_MESSAGE_TYPES - {"RenderRequest"}))
        | st.sampled_from(["renderrequest", "RENDERREQUEST", "RenderRequest "])
        | st.text(max_size=15).filter(lambda t: t != "RenderRequest")
        | st.none()
        | st.integers()
        | st.lists(st.integers(), max_size=2)
    )
    return _case(_encode(body), "unknown_type", "unsupported_type")


@st.composite
def _bad_size(draw: st.DrawFn) -> Case:
    body = draw(valid_bodies)
    body[draw(st.sampled_from(("width", "height")))] = draw(
        st.integers().filter(lambda n: not 8 <= n <= MAX_SIZE)
        | st.booleans()
        | st.floats().filter(lambda f: not (f == f and f.is_integer() and 8 <= f <= MAX_SIZE))
        | st.text(alphabet="abcxyz-", min_size=1, max_size=6)
        | _containers
    )
    return _case(_encode(body), "bad_size")


@st.composite
def _bad_field_type(draw: st.DrawFn) -> Case:
    body = draw(valid_bodies)
    field = draw(
        st.sampled_from(
            ("request_id", "prompt", "negative_prompt", "generator", "style", "seed", "clear_queue", "depth_map")
        )
    )
    if field == "depth_map":
        body[field] = draw(st.lists(_scalars, max_size=2) | st.integers() | st.text(max_size=8))
    elif field == "request_id":
        body[field] = draw(st.just("") | st.integers() | st.none() | _containers)
    elif field == "prompt":
        body[field] = draw(st.none() | st.integers() | _containers)
    else:
        body[field] = draw(_containers)
    return _case(_encode(body), "invalid_field")


@st.composite
def _lone_surrogate(draw: st.DrawFn) -> Case:
    body = draw(valid_bodies)
    field = draw(st.sampled_from(("prompt", "request_id", "negative_prompt")))
    body[field] = "@@@"
    escape = draw(st.integers(0xD800, 0xDFFF).map(lambda n: f"\\u{n:04x}"))
    return _case(_encode(body).replace(b'"@@@"', f'"x{escape}y"'.encode()), "invalid_field")


@st.composite
def _oversize(draw: st.DrawFn) -> Case:
    body = draw(valid_bodies)
    body["prompt"] = "x" * draw(st.integers(MAX_FRAME, MAX_FRAME * 3))
    return _encode(body), frozenset({"oversize"})


malformed_frames: st.SearchStrategy[Case] = st.one_of(
    st.tuples(st.binary(max_size=64), st.binary(max_size=64)).map(lambda t: _case(t[0] + b"\xff" + t[1], "not_utf8")),
    st.text(max_size=80).filter(_not_json).map(lambda t: _case(t.encode("utf-8"), "not_json")),
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: _case(_encode(v), "not_object")),
    st.dictionaries(st.text(max_size=8).filter(lambda k: k != "type"), json_values, max_size=4).map(
        lambda d: _case(_encode(d), "missing_type")
    ),
    valid_bodies.map(lambda b: _case(_encode({k: v for k, v in b.items() if k != "type"}), "missing_type")),
    _wrong_type(),
    _missing_field(),
    _mis_cased_key(),
    _bad_enum(),
    _bad_size(),
    _bad_field_type(),
    _lone_surrogate(),
    _oversize(),
)
"""Frames the bridge must drop, with the reasons it may give."""


@st.composite
def mutated_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with a few fields replaced by arbitrary JSON: anything may happen except a crash."""
    body = draw(valid_bodies)
    keys = [*body, "width", "height", "seed", "clear_queue", "depth_map", "reference_image", "type"]
    for key in draw(st.lists(st.sampled_from(keys), max_size=3)):
        body[key] = draw(json_values)
    return body
