"""The codec: every FrameError reason, byte-compatible replies, and conditioning images."""

from __future__ import annotations

import base64
import importlib
import inspect
import io
import json
import os
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError

from serve_app.experimance.config import BridgeConfig
from serve_app.experimance.protocol import (
    DEFAULT_MAX_PROMPT_CHARS,
    FRAME_ERROR_REASONS,
    Biome,
    Era,
    ExperimanceRenderRequest,
    FireRenderRequest,
    FrameError,
    ImageReady,
    ImageSource,
    RenderRequest,
    decode_frame,
    encode_image_ready,
    file_uri,
    load_image_source,
)
from tests.experimance._core import BIOMES, ERAS, data_url, png_bytes

# The doc's example frames (section 2), with the line breaks of the page removed.
DOC_REQUEST = (
    '{"type":"RenderRequest","request_id":"2b710308-a779-4edf-a3ff-13c11aa25555","generator":null,'
    '"prompt":"sniff test","negative_prompt":null,"width":640,"height":384,"style":null,"seed":null,'
    '"reference_image":null,"depth_map":{"image_data":"data:image/png;base64,iVBORw0KGgo","uri":null},'
    '"clear_queue":false,"era":"modern","biome":"desert"}'
)
DOC_REPLY = (
    '{"type":"ImageReady","request_id":"2b710308-a779-4edf-a3ff-13c11aa25555",'
    '"uri":"file:///tmp/refprobe/generated/mockimagegenerator_20261121_115313_2b710308-\u2026.jpg",'
    '"prompt":"sniff test","era":"modern","biome":"desert"}'
)
DOC_PATH = "/tmp/refprobe/generated/mockimagegenerator_20261121_115313_2b710308-\u2026.jpg"


def _request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(DOC_REQUEST)
    body.update(changes)
    return body


def _frame(body: object) -> bytes:
    return json.dumps(body).encode("utf-8")


def _reason(frame: bytes, schema: str = "experimance", **limits: int) -> str:
    with pytest.raises(FrameError) as caught:
        decode_frame(frame, schema, **limits)  # type: ignore[arg-type]
    return caught.value.reason


# -- decoding -------------------------------------------------------------------------------------------------


def test_decodes_the_docs_example() -> None:
    request = decode_frame(DOC_REQUEST.encode())
    assert isinstance(request, ExperimanceRenderRequest)
    assert (request.era, request.biome) == (Era.MODERN, Biome.DESERT)
    assert request.size == (640, 384) and request.seed is None and not request.clear_queue
    assert request.depth_map == ImageSource(image_data="data:image/png;base64,iVBORw0KGgo", uri=None)


def test_enums_match_the_protocol_names() -> None:
    assert [e.value for e in Era] == list(ERAS)
    assert [b.value for b in Biome] == list(BIOMES)


def test_null_or_absent_size_is_1024() -> None:
    assert decode_frame(_frame(_request(width=None, height=None))).size == (1024, 1024)
    body = _request()
    del body["width"], body["height"]
    assert decode_frame(_frame(body)).size == (1024, 1024)


def test_unknown_fields_are_ignored_like_the_installation() -> None:
    request = decode_frame(_frame(_request(image_data="x", Width=5, extra={"a": 1})))
    assert request.size == (640, 384)


def test_lax_values_are_accepted_like_the_installation() -> None:
    request = decode_frame(_frame(_request(width="512", seed=3.0, clear_queue="true")))
    assert (request.width, request.seed, request.clear_queue) == (512, 3, True)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\xc3\x28", "not_utf8"),
        (b"", "not_json"),
        (b'{"type": "RenderRequest",', "not_json"),
        (b"[" * 100_000, "not_json"),
        (b"1" * 5000, "not_json"),  # beyond Python's integer digit limit
        (b'"RenderRequest"', "not_object"),
        (b"null", "not_object"),
        (b'{"request_id": "a", "prompt": "b"}', "missing_type"),
        (_frame(_request(type="renderrequest")), "unknown_type"),
        (_frame(_request(type=None)), "unknown_type"),
        (_frame(_request(type="ImageReady")), "unsupported_type"),
        (_frame(_request(type="AudioRenderRequest")), "unsupported_type"),
    ],
)
def test_frame_level_reasons(frame: bytes, reason: str) -> None:
    assert _reason(frame) == reason


@pytest.mark.parametrize("field", ["request_id", "prompt", "era", "biome"])
def test_missing_required_field(field: str) -> None:
    body = _request()
    del body[field]
    assert _reason(_frame(body)) == "missing_field"


@pytest.mark.parametrize("field", ["request_id", "prompt", "era", "biome"])
def test_mis_cased_field_name_is_a_missing_field(field: str) -> None:
    body = _request()
    body[field.upper()] = body.pop(field)
    with pytest.raises(FrameError) as caught:
        decode_frame(_frame(body))
    assert caught.value.reason == "missing_field"
    assert field in caught.value.detail


@pytest.mark.parametrize(
    "changes",
    [
        {"era": "Modern"},
        {"biome": "DESERT"},
        {"era": "medieval"},
        {"biome": None},
        {"request_id": 42},
        {"request_id": ""},
        {"prompt": None},
        {"prompt": ["a"]},
        {"seed": "abc"},
        {"seed": 1.5},
        {"clear_queue": "maybe"},
        {"depth_map": "data:image/png;base64,AAAA"},  # an ImageSource is an object
        {"prompt": "\ud800"},  # a lone surrogate from a JSON escape
    ],
)
def test_invalid_field(changes: dict[str, Any]) -> None:
    assert _reason(_frame(_request(**changes))) == "invalid_field"


def test_errors_name_field_value_and_request_id() -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(_frame(_request(era="Modern")))
    error = caught.value
    assert error.request_id == "2b710308-a779-4edf-a3ff-13c11aa25555"
    assert "era" in error.detail and "'Modern'" in error.detail and "case-sensitive" in error.detail
    assert pickle.loads(pickle.dumps(error)).reason == "invalid_field"


@pytest.mark.parametrize(
    "changes",
    [
        {"width": 0},
        {"height": -64},
        {"width": 7},
        {"width": 100_000},
        {"width": True},
        {"height": 64.5},
        {"width": "wide"},
        {"width": [64]},
    ],
)
def test_bad_size(changes: dict[str, Any]) -> None:
    assert _reason(_frame(_request(**changes))) == "bad_size"


def test_max_size_is_configurable() -> None:
    assert decode_frame(_frame(_request(width=4096)), max_size=4096).width == 4096
    assert _reason(_frame(_request(width=4097)), max_size=4096) == "bad_size"


def test_oversize() -> None:
    frame = _frame(_request(prompt="x" * 3000))
    assert decode_frame(frame, max_bytes=len(frame), max_prompt_chars=3000).prompt == "x" * 3000
    assert _reason(frame, max_bytes=len(frame) - 1) == "oversize"  # checked before anything is parsed


def test_schema_variants() -> None:
    base_body = {"type": "RenderRequest", "request_id": "r_base", "prompt": "p", "strength": 0.4}
    assert _reason(_frame(base_body), "experimance") == "missing_field"  # no era/biome
    fire = decode_frame(_frame(base_body), "fire")
    assert isinstance(fire, FireRenderRequest) and fire.strength == 0.4
    base = decode_frame(_frame(base_body), "base")
    assert type(base) is RenderRequest and not hasattr(base, "strength")
    assert _reason(_frame({**base_body, "strength": 1.5}), "fire") == "invalid_field"


def test_every_reason_is_declared() -> None:
    assert set(FRAME_ERROR_REASONS) == {
        "oversize",
        "not_utf8",
        "not_json",
        "not_object",
        "missing_type",
        "unknown_type",
        "unsupported_type",
        "missing_field",
        "invalid_field",
        "bad_size",
        "bad_image",
        "image_not_allowed",
        "duplicate_id",
    }


# -- encoding -------------------------------------------------------------------------------------------------


def test_image_ready_is_byte_compatible_with_the_docs_example() -> None:
    request = decode_frame(DOC_REQUEST.encode())
    assert encode_image_ready(request, DOC_PATH) == DOC_REPLY.encode("utf-8")


def test_image_ready_of_the_base_schema() -> None:
    request = decode_frame(_frame({"type": "RenderRequest", "request_id": "r1", "prompt": "ünïcode"}), "fire")
    assert encode_image_ready(request, "/srv/out/a.png") == (
        '{"type":"ImageReady","request_id":"r1","uri":"file:///srv/out/a.png","prompt":"ünïcode"}'.encode()
    )
    # Nulls are written out, as model_dump_json() does.
    assert ImageReady(request_id="r", uri="file:///x.jpg").model_dump_json() == (
        '{"type":"ImageReady","request_id":"r","uri":"file:///x.jpg","prompt":null}'
    )


def test_file_uri_is_absolute_and_not_percent_encoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a dir" / "é #1.jpg"
    assert file_uri(path) == "file://" + str(path)
    monkeypatch.chdir(tmp_path)
    assert file_uri("rel/x.jpg") == f"file://{tmp_path}/rel/x.jpg"


# -- conditioning images ----------------------------------------------------------------------------------------


def _grey(size: tuple[int, int] = (32, 24), value: int = 100) -> Image.Image:
    return Image.new("L", size, value)


def test_image_from_data_url_raw_base64_and_wrapped_base64() -> None:
    url = data_url(_grey())
    raw = base64.b64encode(png_bytes(_grey())).decode()
    wrapped = "\n".join(raw[i : i + 60] for i in range(0, len(raw), 60))
    for value in (url, raw, wrapped):
        image = load_image_source(ImageSource(image_data=value))
        assert image is not None and image.size == (32, 24) and image.mode == "L"


def test_image_from_an_allowed_path(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "d.png").write_bytes(png_bytes(Image.new("RGBA", (8, 8), (1, 2, 3, 4))))
    for uri in (f"file://{allowed}/d.png", str(allowed / "d.png")):
        image = load_image_source(ImageSource(uri=uri), allowed_dirs=[allowed])
        assert image is not None and image.mode == "RGB" and image.getpixel((0, 0)) == (1, 2, 3)


def test_image_data_wins_over_uri() -> None:
    image = load_image_source(ImageSource(image_data=data_url(_grey(value=7)), uri="/nonexistent.png"))
    assert image is not None and image.getpixel((0, 0)) == 7


def test_empty_image_source_is_no_image() -> None:
    assert load_image_source(ImageSource()) is None


@pytest.mark.parametrize(
    ("image_data", "reason"),
    [
        ("data:image/png,iVBORw0KGgo", "bad_image"),  # not base64-encoded
        ("data:image/png;base64,***", "bad_image"),
        ("iVBORw0KGgo", "bad_image"),  # too short to be valid base64
        (base64.b64encode(b"definitely not an image").decode(), "bad_image"),
    ],
)
def test_bad_image_data(image_data: str, reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        load_image_source(ImageSource(image_data=image_data), request_id="r", field="depth_map")
    assert caught.value.reason == reason and caught.value.request_id == "r"
    assert "depth_map" in caught.value.detail


def test_image_limits() -> None:
    big = data_url(_grey((200, 200)))
    with pytest.raises(FrameError, match="pixels"):
        load_image_source(ImageSource(image_data=big), max_pixels=100 * 100)
    with pytest.raises(FrameError, match="bytes"):
        load_image_source(ImageSource(image_data=big), max_bytes=50)


def test_paths_outside_allowed_dirs_are_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes(_grey()))
    (allowed / "link.png").symlink_to(secret)
    for uri in (str(secret), f"file://{allowed}/../secret.png", f"file://{allowed}/link.png"):
        with pytest.raises(FrameError) as caught:
            load_image_source(ImageSource(uri=uri), allowed_dirs=[allowed])
        assert caught.value.reason == "image_not_allowed", uri
    with pytest.raises(FrameError) as caught:
        load_image_source(ImageSource(uri=str(secret)))  # no allowed dirs: no paths at all
    assert caught.value.reason == "image_not_allowed"


@pytest.mark.parametrize("uri", ["http://example.com/a.png", "relative/a.png", "file://relative.png"])
def test_unreadable_uris(uri: str, tmp_path: Path) -> None:
    with pytest.raises(FrameError) as caught:
        load_image_source(ImageSource(uri=uri), allowed_dirs=[tmp_path])
    assert caught.value.reason == "bad_image"


def test_missing_file_is_a_bad_image(tmp_path: Path) -> None:
    with pytest.raises(FrameError) as caught:
        load_image_source(ImageSource(uri=str(tmp_path / "gone.png")), allowed_dirs=[tmp_path])
    assert caught.value.reason == "bad_image"


def test_a_fifo_in_an_allowed_dir_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "depth.png"
    os.mkfifo(fifo)
    outcome: list[BaseException | object] = []

    def load() -> None:
        try:
            outcome.append(load_image_source(ImageSource(uri=f"file://{fifo}"), allowed_dirs=[tmp_path]))
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(30)  # a liveness guard, not a speed limit: a blocking open never returns at all
    if reader.is_alive():
        # Release the stuck reader (a writer appears and goes: EOF), then fail.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
        pytest.fail("reading a FIFO blocked the worker thread")
    assert len(outcome) == 1 and isinstance(outcome[0], FrameError), outcome
    assert outcome[0].reason == "bad_image" and "regular file" in outcome[0].detail


def test_a_directory_in_an_allowed_dir_is_a_bad_image(tmp_path: Path) -> None:
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(FrameError) as caught:
        load_image_source(ImageSource(uri=str(tmp_path / "folder.png")), allowed_dirs=[tmp_path])
    assert caught.value.reason == "bad_image"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "PPM", "ICO"])
def test_only_png_jpeg_and_webp_are_decoded(fmt: str, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    _grey((16, 16)).convert("RGB").save(buffer, fmt)
    with Image.open(io.BytesIO(buffer.getvalue())) as plain:  # PIL itself reads it: only the policy refuses
        assert plain.format == fmt
    encoded = base64.b64encode(buffer.getvalue()).decode()
    with pytest.raises(FrameError) as caught:
        load_image_source(ImageSource(image_data=encoded), field="depth_map")
    assert caught.value.reason == "bad_image"
    (tmp_path / "ref.png").write_bytes(buffer.getvalue())  # the name says PNG; the bytes decide
    with pytest.raises(FrameError):
        load_image_source(ImageSource(uri=str(tmp_path / "ref.png")), allowed_dirs=[tmp_path])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_png_jpeg_and_webp_are_decoded(fmt: str) -> None:
    buffer = io.BytesIO()
    _grey((16, 16), value=128).convert("RGB").save(buffer, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    image = load_image_source(ImageSource(image_data=base64.b64encode(buffer.getvalue()).decode()))
    assert image is not None and image.size == (16, 16)


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_a_prompt_over_the_generation_limit_is_refused_at_the_door(field: str) -> None:
    assert DEFAULT_MAX_PROMPT_CHARS == 2000  # the generator's limit (pipelines.request.GenerationLimits)
    assert decode_frame(_frame(_request(**{field: "é" * 2000}))).request_id  # at the limit: accepted
    with pytest.raises(FrameError) as caught:
        decode_frame(_frame(_request(**{field: "a" * 2001})))
    assert caught.value.reason == "invalid_field" and field in caught.value.detail
    assert caught.value.request_id == json.loads(DOC_REQUEST)["request_id"]
    assert "aaaa" not in str(caught.value)  # the prompt is not echoed into the log
    assert _reason(_frame(_request(**{field: "a" * 1024 * 1024}))) == "invalid_field"
    assert _reason(_frame(_request(**{field: "a" * 11})), max_prompt_chars=10) == "invalid_field"
    assert decode_frame(_frame(_request(**{field: "a" * 10})), max_prompt_chars=10).request_id


# -- config and exports ---------------------------------------------------------------------------------------


def test_config_defaults_follow_the_installation(tmp_path: Path) -> None:
    config = BridgeConfig(output_dir=tmp_path)
    assert (config.host, config.request_port, config.result_port) == ("localhost", 5564, 5565)
    assert config.endpoint(config.request_port) == "tcp://localhost:5564"
    assert (config.schema_variant, config.image_format, config.timeout_s) == ("experimance", "jpeg", 12.0)
    assert BridgeConfig(output_dir=tmp_path, host="::1").endpoint(5565) == "tcp://[::1]:5565"


def test_config_rejects_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        BridgeConfig(output_dir=tmp_path, bind=True)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        BridgeConfig.model_validate({"output_dir": str(tmp_path), "fallback": {"colour": [0, 0, 0]}})


@pytest.mark.parametrize(
    "name",
    [
        "serve_app.experimance",
        "serve_app.experimance.protocol",
        "serve_app.experimance.styles",
        "serve_app.experimance.bridge",
        "serve_app.experimance.config",
        "serve_app.experimance.outputs",
        "serve_app.experimance.health",
    ],
)
def test_all_lists_real_documented_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported))
    for attr in exported:
        value = getattr(module, attr)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name}.{attr} has no docstring"
    for attr, value in vars(module).items():
        if not attr.startswith("_") and inspect.isclass(value) and value.__module__ == name:
            assert attr in exported, f"{name}.{attr} is public but not in __all__"
