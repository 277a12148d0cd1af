"""Face enhancement, the pure half: find the faces, plan one repaint crop per face, paste the repaints back.

The serving code runs :func:`face_plan`'s crops through the generator's image-to-image pass (strength
:attr:`FaceFixSettings.strength`, prompt :func:`face_prompt`) and hands the results to :func:`paste_faces`; nothing
here calls a model other than the detector.

**Detectors** (:data:`DETECTORS`, in preference order; ``detector=None`` takes the first that imports):

- ``mediapipe``: BlazeFace short-range, whose weights ship inside the mediapipe 0.10.21 wheel (what ADetailer
  offers as its download-free detector). It is NOT a dependency (its metadata pins ``numpy<2``); it is used only
  where it imports. Its score is the model's confidence; detections under :data:`MIN_SCORE` are dropped.
- ``haar``: OpenCV's bundled cascades (``cv2/data`` in opencv-python-headless 4.14; 5.x ships none), always there:
  the frontal ``alt2`` cascade plus the profile cascade on the image and on its mirror image (the profile cascade
  only knows faces turned one way), on the plain grey image (histogram equalisation made a false face in
  scikit-image's ``cell`` photo and halved the evidence for the real one in ``camera``). ``alt2`` rather than
  ``default``: on scikit-image's LFW subset both find 98 of 100 faces and no non-face, but ``default`` also fires
  on the ``cell`` and ``coins`` photos. The profile pass finds the three-quarter face in ``camera`` that no frontal
  cascade does. A box needs :data:`HAAR_MIN_NEIGHBORS` (8) OpenCV neighbours (raw detections merged into it):
  most real faces of 48 px and up get 12 to 50, the false ones seen on the sample photos at 1x to 3x 4 to 6 (a coin's
  portrait head gets 8 to 11 and is kept); 97 of the 100 LFW faces pass at 48 px, 82 at 32 px. A Haar score is
  ``n / (n + 10)`` for ``n`` neighbours, so at least 0.44 and rising with the evidence; it is comparable between
  the Haar cascades, not with mediapipe's.

Images wider or taller than :data:`DETECT_MAX_SIDE` are searched at that size and the boxes scaled back. Boxes
that overlap by more than half of the smaller box are one face (the higher score wins, then the larger box). Faces
come back largest first (the most visible face is fixed first, as the face-fix API promises), then by score, then
top-left; ``max_faces`` keeps the first ones.

**Crops and masks.** :func:`expand_box` pads a face box by ``padding`` times its longer side on each side, squares
it and shifts it inside the image (cut to the image only where the square is bigger than the image). The mask of a
``w x h`` crop is, at pixel ``(x, y)``, ``floor(255 * min(1, dx / (feather * w), dy / (feather * h)) + 0.5)`` with
``dx = min(x, w - 1 - x)`` and ``dy = min(y, h - 1 - y)`` the pixel's distance to the nearest crop edge: 0 on the
crop's outermost pixels, a linear ramp inwards, 255 from ``feather`` of the side in (at 0.5 the middle stays just
under 255) (``feather = 0``: 255
everywhere, a hard paste).

**Paste-back.** Each repaint is resized (Lanczos) to its box and blended as
``(repaint * m + current * (255 - m) + 127) // 255`` per channel, in plan order, so a later crop composites over an
earlier one where their boxes overlap. Every pixel outside all padded boxes, and every pixel where the mask is 0,
is left byte-identical.

**Errors.** :class:`~pipelines.errors.InputError` naming the field: ``strength``, ``padding``, ``max_faces``,
``feather``, ``detector`` (unknown, or not importable here), ``min_size``, ``box``, ``native``, ``max_chars``,
``repainted[i].box``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from pipelines.errors import InputError, field_path

__all__ = [
    "DETECTORS",
    "DETECT_MAX_SIDE",
    "HAAR_MIN_NEIGHBORS",
    "MIN_SCORE",
    "Face",
    "FaceCrop",
    "FaceFixSettings",
    "available_detectors",
    "detect_faces",
    "expand_box",
    "face_plan",
    "face_prompt",
    "paste_faces",
]

Box = tuple[int, int, int, int]

DETECTORS: tuple[str, ...] = ("mediapipe", "haar")
"""Detector engines in preference order; ``detector=None`` uses the first one that imports."""

MIN_SCORE = 0.3
"""Lowest detector score kept (ADetailer's default confidence)."""

DETECT_MAX_SIDE = 1024
"""Longest side, in pixels, the detector searches at; bigger images are searched downscaled."""

HAAR_MIN_NEIGHBORS = 8
"""OpenCV neighbours a Haar box needs (``minNeighbors``)."""

_HAAR_FRONTAL = "haarcascade_frontalface_alt2.xml"
_HAAR_PROFILE = "haarcascade_profileface.xml"
_HAAR_SCALE_FACTOR = 1.1
_HAAR_SCORE_HALF = 10  # neighbours at which a Haar score reaches 0.5
_SAME_FACE_OVERLAP = 0.5  # intersection / smaller area above which two boxes are one face
_FACE_PROMPT = "detailed face, sharp focus"


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: ``(left, top, right, bottom)`` in image pixels, right and bottom exclusive.
        score: The detector's confidence in ``[MIN_SCORE, 1]`` (see the module docstring for each engine's).
    """

    box: Box
    score: float


@dataclass(frozen=True)
class FaceCrop:
    """One planned face repaint.

    Attributes:
        box: The padded box in the image, ``(left, top, right, bottom)``.
        crop: What to repaint: the image inside ``box``, resized when :func:`face_plan` was given ``native``.
        mask: The ``L`` blend mask at the box's size (255 keeps the repaint, 0 the image; see the module docstring).
    """

    box: Box
    crop: Image.Image
    mask: Image.Image


@dataclass(frozen=True)
class FaceFixSettings:
    """What a face fix does, with ADetailer's meanings.

    Attributes:
        strength: Image-to-image denoising strength of each face repaint, ``0 < strength <= 1``.
        padding: Context added around each face box on each side, as a fraction of the box's longer side, 0 to 2.
        max_faces: Most faces repainted (the largest first), 1 to 16.
        feather: Width of the mask's ramp, as a fraction of the crop's side, 0 to 0.5.
        detector: A name from :data:`DETECTORS`, or None for the best that imports.
    """

    strength: float = 0.35
    padding: float = 0.3
    max_faces: int = 4
    feather: float = 0.15
    detector: str | None = None

    def check(self) -> None:
        """Refuse out-of-range settings before any compute.

        Whether a named detector imports is checked by :func:`detect_faces`, where the detection runs: the process
        that checks a request need not be the one that runs it.

        Raises:
            InputError: Naming the first bad field.
        """
        if not _is_number(self.strength) or not 0 < self.strength <= 1:
            raise InputError("strength", self.strength, "a number with 0 < strength <= 1")
        if not _is_number(self.padding) or not 0 <= self.padding <= 2:
            raise InputError("padding", self.padding, "a number from 0 to 2")
        if not _is_int(self.max_faces) or not 1 <= self.max_faces <= 16:
            raise InputError("max_faces", self.max_faces, "an integer from 1 to 16")
        if not _is_number(self.feather) or not 0 <= self.feather <= 0.5:
            raise InputError("feather", self.feather, "a number from 0 to 0.5")
        if self.detector is not None and self.detector not in DETECTORS:
            raise InputError("detector", self.detector, f"None or one of {', '.join(DETECTORS)}")


def available_detectors() -> tuple[str, ...]:
    """The detector engines that import here, in preference order; ``haar`` is always among them.

    Returns:
        A subsequence of :data:`DETECTORS`.
    """
    return tuple(name for name in DETECTORS if name == "haar" or _mediapipe() is not None)


def detect_faces(
    image: Image.Image, *, detector: str | None = None, min_size: int = 24, max_faces: int = 8
) -> list[Face]:
    """Find the faces in an image.

    Args:
        image: Any PIL image (converted to RGB).
        detector: A name from :data:`DETECTORS`, or None for the first of :func:`available_detectors`.
        min_size: Smallest face side kept, in image pixels (at least 1).
        max_faces: Most faces returned (at least 1).

    Returns:
        The faces, largest first (then by score, then top-left), at most ``max_faces``.

    Raises:
        InputError: ``detector`` unknown or not importable here, ``min_size`` or ``max_faces`` below 1.
    """
    available = available_detectors()
    if detector is None:
        detector = available[0]
    elif detector not in available:
        raise InputError("detector", detector, f"None or one of the detectors available here: {', '.join(available)}")
    if not _is_int(min_size) or min_size < 1:
        raise InputError("min_size", min_size, "an integer >= 1")
    if not _is_int(max_faces) or max_faces < 1:
        raise InputError("max_faces", max_faces, "an integer >= 1")

    rgb = image.convert("RGB")
    width, height = rgb.size
    if not width or not height:
        return []
    scale = min(1.0, DETECT_MAX_SIDE / max(width, height))
    if scale < 1.0:
        rgb = rgb.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.LANCZOS)
    pixels = np.asarray(rgb)
    mp = _mediapipe() if detector == "mediapipe" else None
    if mp is not None:
        found = _detect_mediapipe(mp, pixels)
    else:
        found = _detect_haar(pixels, max(1, round(min_size * scale)))

    faces: list[Face] = []
    for box, score in found:
        left, top, right, bottom = (math.floor(v / scale + 0.5) for v in box)
        left, top = max(0, left), max(0, top)
        right, bottom = min(width, right), min(height, bottom)
        if right - left >= min_size and bottom - top >= min_size and score >= MIN_SCORE:
            faces.append(Face(box=(left, top, right, bottom), score=float(score)))
    merged = _merge(faces)
    merged.sort(key=lambda f: (-_area(f.box), -f.score, f.box[1], f.box[0]))
    return merged[:max_faces]


def expand_box(box: Box, padding: float, width: int, height: int, *, square: bool = True) -> Box:
    """Pad a face box and keep it inside the image.

    Args:
        box: ``(left, top, right, bottom)`` inside the ``width x height`` image, non-empty.
        padding: Fraction of the box's side added on each side (>= 0): the longer side when ``square``, else each
            axis its own.
        width: Image width.
        height: Image height.
        square: Make the padded box a square of side ``round(max(w, h) * (1 + 2 * padding))`` centred on the box,
            shifted inside the image (cut only where it is bigger than the image).

    Returns:
        The padded box; it always contains ``box``.

    Raises:
        InputError: ``box`` empty or outside the image, ``padding`` negative.
    """
    left, top, right, bottom = box
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise InputError("box", box, f"(left, top, right, bottom) with 0 <= left < right <= {width}, same for height")
    if not _is_number(padding) or padding < 0:
        raise InputError("padding", padding, "a number >= 0")
    w, h = right - left, bottom - top
    if square:
        side_x = side_y = round(max(w, h) * (1 + 2 * padding))
    else:
        side_x, side_y = round(w * (1 + 2 * padding)), round(h * (1 + 2 * padding))
    new_left, new_right = _span((left + right) / 2, side_x, width, shift=square)
    new_top, new_bottom = _span((top + bottom) / 2, side_y, height, shift=square)
    return (min(new_left, left), min(new_top, top), max(new_right, right), max(new_bottom, bottom))


def face_plan(
    image: Image.Image, faces: Sequence[Face], settings: FaceFixSettings, *, native: int | None = None
) -> list[FaceCrop]:
    """Plan one repaint per face: the padded box, the crop to repaint and its blend mask.

    Args:
        image: The image the faces were found in (converted to RGB).
        faces: Faces in priority order (as :func:`detect_faces` returns them, largest first); the first
            ``settings.max_faces`` are planned.
        settings: Padding, feather and the face count (checked here).
        native: When given, each crop is resized (Lanczos) so its longer side is ``native`` and both sides are
            multiples of 8, the size the generator repaints at; None keeps the crop at its pixel size.

    Returns:
        One :class:`FaceCrop` per planned face, in the order given.

    Raises:
        InputError: A bad setting, a face box outside the image, ``native`` not a multiple of 8 from 64.
    """
    settings.check()
    if native is not None and (not _is_int(native) or native < 64 or native % 8):
        raise InputError("native", native, "None or a multiple of 8 >= 64")
    rgb = image.convert("RGB")
    width, height = rgb.size
    plan: list[FaceCrop] = []
    for face in faces[: settings.max_faces]:
        box = expand_box(face.box, settings.padding, width, height)
        crop = rgb.crop(box)
        if native is not None:
            crop = crop.resize(_repaint_size(crop.size, native), Image.Resampling.LANCZOS)
        mask = _feather_mask(box[2] - box[0], box[3] - box[1], settings.feather)
        plan.append(FaceCrop(box=box, crop=crop, mask=mask))
    return plan


def paste_faces(image: Image.Image, repainted: Sequence[tuple[FaceCrop, Image.Image]]) -> Image.Image:
    """Blend repainted face crops back into the image through their masks.

    Args:
        image: The image the plan was made from (converted to RGB); it is not modified.
        repainted: ``(crop, repaint)`` pairs; each repaint, of any size, is resized to its crop's box.

    Returns:
        A new RGB image, identical to ``image`` outside every box and wherever a mask is 0.

    Raises:
        InputError: ``repainted[i].box`` outside the image or not the size of its mask.
    """
    out = np.array(image.convert("RGB"), dtype=np.uint8)
    height, width = out.shape[:2]
    for i, (plan, repaint) in enumerate(repainted):
        left, top, right, bottom = plan.box
        size = (right - left, bottom - top)
        if not (0 <= left < right <= width and 0 <= top < bottom <= height) or plan.mask.size != size:
            raise InputError(
                field_path("repainted", i, "box"), plan.box, f"a box inside the {width}x{height} image, its mask's size"
            )
        rep = repaint.convert("RGB")
        if rep.size != size:
            rep = rep.resize(size, Image.Resampling.LANCZOS)
        m = np.asarray(plan.mask.convert("L"), dtype=np.uint32)[..., None]
        region = out[top:bottom, left:right].astype(np.uint32)
        blended = (np.asarray(rep, dtype=np.uint32) * m + region * (255 - m) + 127) // 255
        out[top:bottom, left:right] = blended.astype(np.uint8)
    return Image.fromarray(out, "RGB")


def face_prompt(prompt: str | None, *, max_chars: int | None = None) -> str:
    """The prompt a face repaint runs with: ``"detailed face, sharp focus, <the image's prompt>"``.

    Args:
        prompt: The image's own prompt; None or blank gives the face prefix alone.
        max_chars: When given, the image's prompt is cut from its end so the whole fits (the generator's
            ``max_prompt_chars``); it must leave room for the prefix.

    Returns:
        The face prompt.

    Raises:
        InputError: ``max_chars`` shorter than the prefix.
    """
    if max_chars is not None and (not _is_int(max_chars) or max_chars < len(_FACE_PROMPT)):
        raise InputError("max_chars", max_chars, f"None or an integer >= {len(_FACE_PROMPT)}")
    rest = (prompt or "").strip()
    if max_chars is not None:
        rest = rest[: max(0, max_chars - len(_FACE_PROMPT) - 2)].rstrip(" ,")
    return f"{_FACE_PROMPT}, {rest}" if rest else _FACE_PROMPT


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _span(centre: float, side: int, limit: int, *, shift: bool) -> tuple[int, int]:
    """``[start, start + side)`` centred on ``centre``, shifted (or cut, when not ``shift``) into ``[0, limit)``."""
    start = math.floor(centre - side / 2 + 0.5)
    if shift and side >= limit:
        return 0, limit
    if not shift:
        return max(0, start), min(limit, start + side)
    start = min(max(0, start), limit - side)
    return start, start + side


def _repaint_size(size: tuple[int, int], native: int) -> tuple[int, int]:
    w, h = size
    scale = native / max(w, h)
    return max(8, round(w * scale / 8) * 8), max(8, round(h * scale / 8) * 8)


def _feather_mask(width: int, height: int, feather: float) -> Image.Image:
    if feather == 0:
        return Image.new("L", (width, height), 255)
    dx = np.minimum(np.arange(width), width - 1 - np.arange(width)) / (feather * width)
    dy = np.minimum(np.arange(height), height - 1 - np.arange(height)) / (feather * height)
    ramp = np.minimum(np.minimum(dy[:, None], dx[None, :]), 1.0)
    return Image.fromarray(np.floor(ramp * 255 + 0.5).astype(np.uint8), "L")  # halves up, as documented


def _area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _merge(faces: list[Face]) -> list[Face]:
    """Best score first; a box that overlaps a better one by more than half of the smaller box is the same face."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: (-f.score, -_area(f.box), f.box[1], f.box[0])):
        for other in kept:
            ix = min(face.box[2], other.box[2]) - max(face.box[0], other.box[0])
            iy = min(face.box[3], other.box[3]) - max(face.box[1], other.box[1])
            if ix > 0 and iy > 0 and ix * iy > _SAME_FACE_OVERLAP * min(_area(face.box), _area(other.box)):
                break
        else:
            kept.append(face)
    return kept


@functools.cache
def _cv2() -> Any:
    import cv2

    return cv2


@functools.cache
def _mediapipe() -> ModuleType | None:
    try:
        import mediapipe
    except Exception:  # a broken optional install (its numpy<2 / protobuf<5 pins unmet) must not take Haar down
        return None
    return mediapipe


def _detect_haar(rgb: np.ndarray, min_size: int) -> list[tuple[tuple[float, float, float, float], float]]:
    cv2 = _cv2()
    # No histogram equalisation: on scikit-image's photos it made a false face in `cell` and halved the evidence
    # for the real one in `camera`.
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    width = grey.shape[1]
    # Loaded per call (about 10 ms each): a CascadeClassifier keeps per-image state and is not safe to share
    # between the threads a deployment may run detections on.
    frontal = cv2.CascadeClassifier(cv2.data.haarcascades + _HAAR_FRONTAL)
    profile = cv2.CascadeClassifier(cv2.data.haarcascades + _HAAR_PROFILE)
    found: list[tuple[tuple[float, float, float, float], float]] = []
    for cascade, mirrored in ((frontal, False), (profile, False), (profile, True)):
        boxes, neighbours = cascade.detectMultiScale2(
            grey[:, ::-1].copy() if mirrored else grey,
            scaleFactor=_HAAR_SCALE_FACTOR,
            minNeighbors=HAAR_MIN_NEIGHBORS,
            minSize=(min_size, min_size),
        )
        for (x, y, w, h), n in zip(boxes, neighbours, strict=True):
            left = width - x - w if mirrored else x
            found.append(
                ((float(left), float(y), float(left + w), float(y + h)), float(n) / (float(n) + _HAAR_SCORE_HALF))
            )
    return found


def _detect_mediapipe(mp: ModuleType, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
    height, width = rgb.shape[:2]
    # Short range (model_selection=0) is the model the 0.10.21 wheel is known to carry. A fresh graph per call: a
    # FaceDetection graph is not safe to share between threads.
    with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=MIN_SCORE) as model:
        result = model.process(np.ascontiguousarray(rgb))
    found: list[tuple[tuple[float, float, float, float], float]] = []
    for detection in result.detections or ():
        rel = detection.location_data.relative_bounding_box
        left, top = rel.xmin * width, rel.ymin * height
        found.append(((left, top, left + rel.width * width, top + rel.height * height), float(detection.score[0])))
    return found
