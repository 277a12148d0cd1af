"""pipelines/enhance/faces.py: faces found where a person marked them, masks and paste-back checked pixel by pixel.

The photographs are scikit-image's (read at test time, nothing committed): ``astronaut`` (Eileen Collins, NASA,
public domain) has one frontal face, ``camera`` (CC0, Lav Varshney) one three-quarter face, ``coffee`` (CC0, Rachel
Michetti) and ``chelsea`` (CC0, Stefan van der Walt, a cat) none. The face regions and landmarks below were marked
by hand once, by reading a 3x (astronaut) and 4x (camera) enlargement of the photo with a 16 px grid drawn on it;
they are not the detector's output. Masks, boxes and blends are recomputed here with plain loops from the formulas
in the module docstring.
"""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from pipelines.enhance import faces
from pipelines.enhance.faces import (
    DETECTORS,
    MIN_SCORE,
    Face,
    FaceCrop,
    FaceFixSettings,
    available_detectors,
    detect_faces,
    expand_box,
    face_plan,
    face_prompt,
    paste_faces,
)
from pipelines.errors import InputError

skdata = pytest.importorskip("skimage.data")

Box = tuple[int, int, int, int]

# Hand-marked (see the module docstring): the skin of the face from hairline to chin and cheek to cheek, and points
# that any box around the face must contain.
ASTRONAUT_FACE: Box = (180, 80, 272, 182)
ASTRONAUT_POINTS = [(203, 101), (247, 102), (224, 123), (225, 145)]  # left eye, right eye, nose tip, mouth
CAMERA_FACE: Box = (185, 128, 258, 196)
CAMERA_POINTS = [(234, 148), (252, 163), (238, 183)]  # eye, nose tip, mouth

_PROPS: dict[str, Any] = {"database": None, "deadline": None, "max_examples": 200}


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def contains(box: Box, points: list[tuple[float, float]]) -> bool:
    return all(box[0] <= x < box[2] and box[1] <= y < box[3] for x, y in points)


def assert_found(face: Face, region: Box, points: list[tuple[float, float]]) -> None:
    assert iou(face.box, region) >= 0.4, (face, region)
    assert contains(face.box, points), (face, points)
    assert MIN_SCORE <= face.score <= 1


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


@pytest.fixture(scope="module")
def astronaut_faces(astronaut: Image.Image) -> list[Face]:
    return detect_faces(astronaut, detector="haar")


@pytest.fixture
def no_mediapipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faces, "_mediapipe", lambda: None)


# -- detection -------------------------------------------------------------------------------------------------------


def test_haar_finds_the_astronauts_face(astronaut_faces: list[Face]) -> None:
    assert len(astronaut_faces) == 1
    assert_found(astronaut_faces[0], ASTRONAUT_FACE, ASTRONAUT_POINTS)


def test_haar_finds_the_three_quarter_face_in_camera() -> None:
    found = detect_faces(Image.fromarray(skdata.camera()), detector="haar")  # a grey image: converted to RGB
    assert len(found) == 1
    assert_found(found[0], CAMERA_FACE, CAMERA_POINTS)


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_haar_finds_no_face_where_there_is_none(name: str) -> None:
    assert detect_faces(Image.fromarray(getattr(skdata, name)()), detector="haar") == []


def _moved(box: Box, crop_at: tuple[int, int], scale: float, mirror_width: int | None, at: tuple[int, int]) -> Box:
    """Where ``box`` of the source lands after crop at ``crop_at``, optional mirror, resize by ``scale``, paste at."""
    left, top, right, bottom = box[0] - crop_at[0], box[1] - crop_at[1], box[2] - crop_at[0], box[3] - crop_at[1]
    if mirror_width is not None:
        left, right = mirror_width - right, mirror_width - left
    return (
        round(left * scale) + at[0],
        round(top * scale) + at[1],
        round(right * scale) + at[0],
        round(bottom * scale) + at[1],
    )


def _moved_points(
    points: list[tuple[int, int]], crop_at: tuple[int, int], scale: float, mirror_width: int | None, at: tuple[int, int]
) -> list[tuple[float, float]]:
    out = []
    for x, y in points:
        cx, cy = x - crop_at[0], y - crop_at[1]
        if mirror_width is not None:
            cx = mirror_width - cx
        out.append((cx * scale + at[0], cy * scale + at[1]))
    return out


def test_composited_faces_are_found_where_they_were_put(no_mediapipe: None, astronaut: Image.Image) -> None:
    crop_at, side = (140, 30), 170
    crop = astronaut.crop((crop_at[0], crop_at[1], crop_at[0] + side, crop_at[1] + side))
    canvas = Image.new("RGB", (640, 360), (120, 130, 140))
    big_at, small_at, small_scale = (40, 100), (440, 60), 120 / side
    canvas.paste(crop, big_at)
    canvas.paste(ImageOps.mirror(crop).resize((120, 120), Image.Resampling.LANCZOS), small_at)

    found = detect_faces(canvas)  # None: the best available, Haar here
    assert len(found) == 2
    big, small = found  # largest first
    assert_found(
        big,
        _moved(ASTRONAUT_FACE, crop_at, 1.0, None, big_at),
        _moved_points(ASTRONAUT_POINTS, crop_at, 1.0, None, big_at),
    )
    assert_found(
        small,
        _moved(ASTRONAUT_FACE, crop_at, small_scale, side, small_at),
        _moved_points(ASTRONAUT_POINTS, crop_at, small_scale, side, small_at),
    )
    assert detect_faces(canvas, max_faces=1) == [big]


def test_a_large_image_is_searched_downscaled_and_boxes_scaled_back(astronaut: Image.Image) -> None:
    big = astronaut.resize((1536, 1536), Image.Resampling.LANCZOS)  # past DETECT_MAX_SIDE (1024)
    found = detect_faces(big, detector="haar")
    assert len(found) == 1
    assert_found(
        found[0],
        _moved(ASTRONAUT_FACE, (0, 0), 3.0, None, (0, 0)),
        _moved_points(ASTRONAUT_POINTS, (0, 0), 3.0, None, (0, 0)),
    )


def test_min_size_drops_smaller_faces(astronaut: Image.Image) -> None:
    # The hand-marked face is about 100 px on a side.
    assert detect_faces(astronaut, detector="haar", min_size=150) == []


def test_available_detectors_always_include_haar() -> None:
    names = available_detectors()
    assert "haar" in names
    assert list(names) == [d for d in DETECTORS if d in names]


def test_unknown_or_unavailable_detector_is_refused(no_mediapipe: None, astronaut: Image.Image) -> None:
    for name in ("yunet", "mediapipe"):
        with pytest.raises(InputError) as err:
            detect_faces(astronaut, detector=name)
        assert err.value.param == "detector"
        assert err.value.value == name


@pytest.mark.parametrize(("kwargs", "param"), [({"min_size": 0}, "min_size"), ({"max_faces": 0}, "max_faces")])
def test_detect_arguments_are_checked(astronaut: Image.Image, kwargs: dict[str, int], param: str) -> None:
    with pytest.raises(InputError) as err:
        detect_faces(astronaut, detector="haar", **kwargs)
    assert err.value.param == param


class _FakeFaceDetection:
    """Stands in for ``mediapipe.solutions.face_detection.FaceDetection`` (the legacy solutions API of 0.10.x)."""

    calls: list[dict[str, Any]] = []

    def __init__(self, *, model_selection: int, min_detection_confidence: float) -> None:
        self.calls.append({"model_selection": model_selection, "confidence": min_detection_confidence})

    def __enter__(self) -> _FakeFaceDetection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def process(self, rgb: np.ndarray) -> SimpleNamespace:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        self.calls[-1]["shape"] = rgb.shape

        def det(x: float, y: float, w: float, h: float, score: float) -> SimpleNamespace:
            rel = SimpleNamespace(xmin=x, ymin=y, width=w, height=h)
            return SimpleNamespace(score=[score], location_data=SimpleNamespace(relative_bounding_box=rel))

        return SimpleNamespace(
            detections=[
                det(0.25, 0.5, 0.25, 0.25, 0.9),  # 400x200 image: (100, 100, 200, 150)
                det(-0.05, -0.1, 0.2, 0.4, 0.8),  # off the top-left corner: clamped to (0, 0, 60, 60)
                det(0.6, 0.1, 0.3, 0.6, 0.2),  # under MIN_SCORE: dropped
                det(0.9, 0.9, 0.02, 0.04, 0.95),  # 8 px: under min_size
            ]
        )


def test_mediapipe_is_preferred_when_it_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SimpleNamespace(solutions=SimpleNamespace(face_detection=SimpleNamespace(FaceDetection=_FakeFaceDetection)))
    monkeypatch.setitem(sys.modules, "mediapipe", fake)
    faces._mediapipe.cache_clear()
    monkeypatch.setattr(_FakeFaceDetection, "calls", [])
    try:
        assert available_detectors() == ("mediapipe", "haar")
        image = Image.new("RGB", (400, 200), (90, 90, 90))
        found = detect_faces(image)
        assert found == [Face((100, 100, 200, 150), 0.9), Face((0, 0, 60, 60), 0.8)]
        assert _FakeFaceDetection.calls == [{"model_selection": 0, "confidence": MIN_SCORE, "shape": (200, 400, 3)}]
        # Haar stays selectable by name while mediapipe is there.
        assert detect_faces(image, detector="haar") == []
    finally:
        faces._mediapipe.cache_clear()


def test_real_mediapipe_finds_the_astronaut(astronaut: Image.Image) -> None:
    pytest.importorskip("mediapipe")
    if "mediapipe" not in available_detectors():
        pytest.skip("mediapipe is installed but does not import cleanly")
    found = detect_faces(astronaut, detector="mediapipe")
    assert len(found) == 1
    assert_found(found[0], ASTRONAUT_FACE, ASTRONAUT_POINTS)


# -- boxes -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "padding", "size", "square", "expected"),
    [
        # 40x20 box, centre (120, 110): square side round(40 * 2) = 80.
        ((100, 100, 140, 120), 0.5, (400, 300), True, (80, 70, 160, 150)),
        # Each axis on its own: 80 wide, 40 tall.
        ((100, 100, 140, 120), 0.5, (400, 300), False, (80, 90, 160, 130)),
        # At the corner: the 80 px square is shifted inside, not cut.
        ((0, 0, 40, 40), 0.5, (400, 300), True, (0, 0, 80, 80)),
        ((360, 260, 400, 300), 0.5, (400, 300), True, (320, 220, 400, 300)),
        # Not square: cut at the image edge.
        ((0, 0, 40, 40), 0.5, (400, 300), False, (0, 0, 60, 60)),
        # A 240 px square in a 100x60 image: cut to the image.
        ((10, 10, 90, 50), 1.0, (100, 60), True, (0, 0, 100, 60)),
        # No padding: the box squared on its longer side.
        ((10, 20, 30, 30), 0.0, (100, 60), True, (10, 15, 30, 35)),
    ],
)
def test_expand_box_examples(box: Box, padding: float, size: tuple[int, int], square: bool, expected: Box) -> None:
    assert expand_box(box, padding, *size, square=square) == expected


@settings(**_PROPS)
@given(
    width=st.integers(1, 600),
    height=st.integers(1, 600),
    data=st.data(),
    padding=st.floats(0, 2),
)
def test_expand_box_contains_the_box_and_stays_inside(
    width: int, height: int, data: st.DataObject, padding: float
) -> None:
    left = data.draw(st.integers(0, width - 1))
    right = data.draw(st.integers(left + 1, width))
    top = data.draw(st.integers(0, height - 1))
    bottom = data.draw(st.integers(top + 1, height))
    out = expand_box((left, top, right, bottom), padding, width, height)
    assert 0 <= out[0] <= left and 0 <= out[1] <= top and right <= out[2] <= width and bottom <= out[3] <= height
    side = round(max(right - left, bottom - top) * (1 + 2 * padding))
    # Square where the square fits (within a pixel of rounding), else the whole image along that axis.
    for got, limit in ((out[2] - out[0], width), (out[3] - out[1], height)):
        assert got == limit if side >= limit else abs(got - side) <= 1


@pytest.mark.parametrize(
    ("box", "padding", "param"),
    [
        ((10, 10, 10, 20), 0.3, "box"),
        ((-1, 0, 10, 10), 0.3, "box"),
        ((0, 0, 10, 101), 0.3, "box"),
        ((0, 0, 5, 5), -0.1, "padding"),
    ],
)
def test_expand_box_errors(box: Box, padding: float, param: str) -> None:
    with pytest.raises(InputError) as err:
        expand_box(box, padding, 100, 100)
    assert err.value.param == param


# -- masks and plans -------------------------------------------------------------------------------------------------


def expected_mask(width: int, height: int, feather: float) -> np.ndarray:
    """The documented mask, a pixel at a time."""
    out = np.zeros((height, width), dtype=np.uint8)
    for y in range(height):
        for x in range(width):
            if feather == 0:
                value = 1.0
            else:
                dx, dy = min(x, width - 1 - x), min(y, height - 1 - y)
                value = min(1.0, dx / (feather * width), dy / (feather * height))
            out[y, x] = math.floor(value * 255 + 0.5)
    return out


@pytest.mark.parametrize("feather", [0.0, 0.1, 0.15, 0.5])
def test_masks_feather_as_documented(astronaut: Image.Image, feather: float) -> None:
    # One face near the image's right edge (the padded square shifted in) and one in the middle.
    chosen = [Face((430, 200, 500, 260), 0.9), Face((200, 80, 260, 150), 0.8)]
    plan = face_plan(astronaut, chosen, FaceFixSettings(padding=0.3, feather=feather))
    assert [p.box for p in plan] == [expand_box(f.box, 0.3, 512, 512) for f in chosen]
    for p in plan:
        w, h = p.box[2] - p.box[0], p.box[3] - p.box[1]
        assert p.mask.mode == "L" and p.mask.size == (w, h)
        mask = np.asarray(p.mask)
        np.testing.assert_array_equal(mask, expected_mask(w, h, feather))
        if feather:
            assert mask[0].max() == mask[-1].max() == mask[:, 0].max() == mask[:, -1].max() == 0
            if feather < 0.5:  # at 0.5 the ramp's top, half a side in, lies just past the middle pixel
                assert mask[h // 2, w // 2] == 255
            assert (np.diff(mask[h // 2, : w // 2].astype(int)) >= 0).all()  # rising towards the middle
        else:
            assert (mask == 255).all()


def test_plan_crops_the_padded_boxes(astronaut: Image.Image, astronaut_faces: list[Face]) -> None:
    settings_ = FaceFixSettings()
    (plan,) = face_plan(astronaut, astronaut_faces, settings_)
    assert plan.box == expand_box(astronaut_faces[0].box, settings_.padding, 512, 512)
    assert plan.crop.mode == "RGB"
    np.testing.assert_array_equal(
        np.asarray(plan.crop), np.asarray(astronaut)[plan.box[1] : plan.box[3], plan.box[0] : plan.box[2]]
    )


def test_plan_resizes_crops_to_the_native_size(astronaut: Image.Image) -> None:
    strip = Image.fromarray(np.asarray(astronaut)[:200])  # 512 x 200
    # 30 px box, padding 2: a 150 px square that fits; 40 px box: a 200 px square, cut to the strip's 200 rows.
    chosen = [Face((200, 80, 230, 110), 0.9), Face((10, 150, 50, 190), 0.8)]
    square, cut = face_plan(strip, chosen, FaceFixSettings(padding=2.0), native=512)
    assert square.box[2] - square.box[0] == square.box[3] - square.box[1] == 150
    assert square.crop.size == (512, 512)
    w, h = cut.box[2] - cut.box[0], cut.box[3] - cut.box[1]
    assert (w, h) == (200, 200)
    chosen = [Face((10, 150, 60, 190), 0.8)]  # 50 px: a 250 px square, cut to 250 x 200
    (cut,) = face_plan(strip, chosen, FaceFixSettings(padding=2.0), native=512)
    w, h = cut.box[2] - cut.box[0], cut.box[3] - cut.box[1]
    assert (w, h) == (250, 200)
    # The crop keeps its aspect, both sides multiples of 8, the longer one 512; the mask stays at the box's size.
    assert cut.crop.size == (512, 8 * round(512 * h / w / 8)) == (512, 408)
    assert cut.mask.size == (w, h)


def test_plan_keeps_the_first_max_faces(astronaut: Image.Image) -> None:
    chosen = [Face((10 + 60 * i, 10, 50 + 60 * i, 50), 0.9) for i in range(6)]
    plan = face_plan(astronaut, chosen, FaceFixSettings(max_faces=4))
    assert [p.box for p in plan] == [expand_box(f.box, 0.3, 512, 512) for f in chosen[:4]]
    with pytest.raises(InputError) as err:
        face_plan(astronaut, chosen, FaceFixSettings(), native=100)
    assert err.value.param == "native"


# -- paste-back ------------------------------------------------------------------------------------------------------


def test_paste_changes_only_the_padded_boxes(astronaut: Image.Image, astronaut_faces: list[Face]) -> None:
    chosen = [*astronaut_faces, Face((400, 380, 460, 440), 0.5)]
    plan = face_plan(astronaut, chosen, FaceFixSettings(), native=512)
    colours = [(255, 0, 255), (0, 255, 0)]
    # The generator answers at its own size (not the box's): paste_faces resizes. Flat colours stay flat.
    repainted = [(p, Image.new("RGB", (512, 512), c)) for p, c in zip(plan, colours, strict=True)]
    before = np.array(astronaut)  # a copy
    out = np.asarray(paste_faces(astronaut, repainted))
    np.testing.assert_array_equal(np.asarray(astronaut), before)  # the input is not modified

    inside = np.zeros(before.shape[:2], dtype=bool)
    for p in plan:
        inside[p.box[1] : p.box[3], p.box[0] : p.box[2]] = True
    assert inside.any() and not inside.all()
    np.testing.assert_array_equal(out[~inside], before[~inside])  # byte-identical outside every padded box

    for p, colour in zip(plan, colours, strict=True):
        m = expected_mask(p.box[2] - p.box[0], p.box[3] - p.box[1], 0.15).astype(np.int64)
        region_in = before[p.box[1] : p.box[3], p.box[0] : p.box[2]].astype(np.int64)
        region_out = out[p.box[1] : p.box[3], p.box[0] : p.box[2]].astype(np.int64)
        rep = np.array(colour, dtype=np.int64)
        expected = (rep * m[..., None] + region_in * (255 - m[..., None]) + 127) // 255
        np.testing.assert_array_equal(region_out, expected)
        np.testing.assert_array_equal(region_out[m == 0], region_in[m == 0])  # the crop's outer ring untouched
        assert (region_out[m == 255] == rep).all()
        changed = (region_out != region_in).any(axis=-1)
        assert changed[m == 255].mean() > 0.99  # the photo is nowhere this exact magenta or green


def test_later_crops_composite_over_earlier_ones(astronaut: Image.Image) -> None:
    first = FaceCrop((100, 100, 200, 200), Image.new("RGB", (100, 100)), Image.new("L", (100, 100), 255))
    second = FaceCrop((150, 150, 250, 250), Image.new("RGB", (100, 100)), Image.new("L", (100, 100), 128))
    out = paste_faces(
        astronaut,
        [(first, Image.new("RGB", (100, 100), (200, 0, 0))), (second, Image.new("RGB", (100, 100), (0, 0, 100)))],
    )
    assert out.getpixel((120, 120)) == (200, 0, 0)
    # Both: the second blended over the first's result, (0 * 128 + 200 * 127 + 127) // 255 = 100 for red.
    assert out.getpixel((170, 170)) == ((200 * 127 + 127) // 255, 0, (100 * 128 + 127) // 255)


def test_paste_refuses_a_box_outside_the_image(astronaut: Image.Image) -> None:
    bad = FaceCrop((500, 500, 600, 600), Image.new("RGB", (100, 100)), Image.new("L", (100, 100), 255))
    ok = FaceCrop((0, 0, 10, 10), Image.new("RGB", (10, 10)), Image.new("L", (10, 10), 255))
    with pytest.raises(InputError) as err:
        paste_faces(astronaut, [(ok, Image.new("RGB", (10, 10))), (bad, Image.new("RGB", (100, 100)))])
    assert err.value.param == "repainted[1].box"


# -- prompt and settings ---------------------------------------------------------------------------------------------


def test_face_prompt() -> None:
    assert face_prompt("a dwarf paladin, oil painting") == "detailed face, sharp focus, a dwarf paladin, oil painting"
    assert face_prompt(None) == face_prompt("  ") == "detailed face, sharp focus"
    long = "a knight, " * 300
    cut = face_prompt(long, max_chars=2000)
    assert len(cut) <= 2000 and cut.startswith("detailed face, sharp focus, a knight, a knight")
    assert not cut.endswith((",", " "))
    with pytest.raises(InputError) as err:
        face_prompt("x", max_chars=10)
    assert err.value.param == "max_chars"


def test_default_settings_are_valid() -> None:
    s = FaceFixSettings()
    s.check()
    assert (s.strength, s.padding, s.max_faces, s.feather, s.detector) == (0.35, 0.3, 4, 0.15, None)
    for name in DETECTORS:
        FaceFixSettings(detector=name).check()  # availability is detect_faces' business


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("strength", 0),
        ("strength", 1.01),
        ("strength", float("nan")),
        ("strength", "0.3"),
        ("padding", -0.1),
        ("padding", 2.5),
        ("max_faces", 0),
        ("max_faces", 17),
        ("max_faces", 2.0),
        ("max_faces", True),
        ("feather", -0.01),
        ("feather", 0.6),
        ("detector", "yunet"),
    ],
)
def test_settings_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(InputError) as err:
        FaceFixSettings(**{field: value}).check()
    assert err.value.param == field
    assert field in str(err.value)


def test_opencv_and_mediapipe_are_imported_lazily() -> None:
    code = (
        "import sys, pipelines.enhance.faces; "
        "assert not {'cv2', 'mediapipe'} & set(sys.modules), 'imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
