"""A bridge request becomes an ordinary generate job: sizes, conditioning images, deadline and options."""

from __future__ import annotations

from PIL import Image

from pipelines import encode
from pipelines.styles import Style
from serve_app.experimance.bridge import BridgeJob
from serve_app.experimance.jobs import generate_request, render_size
from serve_app.jobs import JobSource


def _job(**kw: object) -> BridgeJob:
    base: dict[str, object] = {
        "request_id": "r-1", "prompt": "a valley", "negative_prompt": "blur", "width": 1024, "height": 768,
        "seed": 9, "received_at": 1000.0, "deadline": 1012.0,
    }  # fmt: skip
    base.update(kw)
    return BridgeJob(**base)  # type: ignore[arg-type]


def test_render_size_keeps_the_aspect_within_the_cap_in_multiples_of_8() -> None:
    assert render_size(1024, 768, 256) == (256, 192)  # 1024 * 0.25, 768 * 0.25
    assert render_size(1000, 1000, None) == (1000, 1000)
    assert render_size(100, 2000, 256) == (64, 256)  # 12.8 rounds to 16, then the 64 floor


def test_a_depth_map_conditions_through_the_controlnet_when_configured() -> None:
    depth = Image.new("L", (32, 32), 128)
    job = _job(init_image=depth, init_kind="depth_map", strength=0.8, depth_map=depth, style=Style("s"))
    request, options = generate_request(
        job, max_render_side=256, depth_controlnet=True, control_scale=0.7, priority=50, now=1002.0
    )
    assert (request.partial.width, request.partial.height, request.partial.seed) == (256, 192, 9)
    assert request.init_png is None  # a depth map is no img2img start when it conditions the ControlNet
    assert request.control_png is not None and request.control_scale == 0.7
    assert encode.decode(request.control_png).convert("L").getpixel((0, 0)) == 128
    assert request.style == Style("s") and request.partial.negative_prompt == "blur"
    assert options.priority == 50 and options.source == JobSource.ZMQ and options.admit is False
    assert options.deadline_s == 10.0  # 1012 - 1002: the installation's timeout counts queue time


def test_without_the_controlnet_the_depth_map_is_the_img2img_start() -> None:
    depth = Image.new("L", (32, 32), 40)
    job = _job(init_image=depth, init_kind="depth_map", strength=0.8, depth_map=depth, deadline=0.0)
    request, options = generate_request(
        job, max_render_side=None, depth_controlnet=False, control_scale=1.0, priority=1
    )
    assert request.control_png is None and request.init_png is not None and request.strength == 0.8
    assert options.deadline_s is None  # no deadline given, none set
