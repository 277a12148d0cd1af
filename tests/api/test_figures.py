"""Portraits, creatures and items end to end on the tiny model through HTTP: variations as one batch, a round
token, an item card's rarity band, subjects, moderation (nothing refused reaches the generator)."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pipelines.overlay.figures import card_layout
from pipelines.prompts.specs import RARITY
from serve_app.errors import ModerationRefused
from serve_app.jobs.kinds import GenerateRequest
from serve_app.schemas import PartialRequest
from tests.api.conftest import Local

IMAGES = "/api/v2/images"
PORTRAITS = "/api/v2/images/portraits"
CREATURES = "/api/v2/images/creatures"
ITEMS = "/api/v2/images/items"
SUBJECTS = "/api/v2/images/subjects"
SMALL = {"width": 64, "height": 64}


def _job(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"{path}?wait=120", json={**SMALL, **body})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded", job
    return job


def _png(client: TestClient, image_id: str) -> Image.Image:
    response = client.get(f"{IMAGES}/{image_id}/file")
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


def test_variations_are_one_job_one_batch_one_seed_family(client: TestClient, local: Local) -> None:
    before = list(local.batches)
    body = {"character": {"name": "Mira", "ancestry": "elf", "role": "ranger"}, "variations": 4, "seed": 1000}
    job = _job(client, PORTRAITS, body)
    data = job["result"]["data"]
    assert data["seeds"] == [1000, 1001, 1002, 1003]
    assert len(job["result"]["images"]) == 4
    assert local.batches[len(before) :] == [4]  # handed to the generator at once...
    sizes = [client.get(f"{IMAGES}/{i}").json()["settings"]["batch_size"] for i in job["result"]["images"]]
    assert sizes == [4, 4, 4, 4]  # ...and run in one diffusers call
    seeds = [client.get(f"{IMAGES}/{i}").json()["seed"] for i in job["result"]["images"]]
    assert seeds == [1000, 1001, 1002, 1003]
    assert "Mira" in data["prompt"] and "elf" in data["prompt"]


def test_a_family_larger_than_a_batch_still_finishes_in_order(client: TestClient, local: Local) -> None:
    job = _job(client, PORTRAITS, {"character": {"name": "Oren"}, "variations": 6, "seed": 7})
    assert job["result"]["data"]["seeds"] == list(range(7, 13))
    assert len(set(job["result"]["images"])) == 6


def test_creature_token_is_round_and_transparent_outside_the_ring(client: TestClient) -> None:
    body = {"creature": {"type": "dragon", "size": "Huge"}, "token": True, "seed": 3}
    job = _job(client, CREATURES, body)
    entry = job["result"]["data"]["variations"][0]
    token = _png(client, entry["token_image_id"])
    assert token.mode == "RGBA"
    alpha = np.asarray(token)[:, :, 3].astype(float)
    size = token.width
    r = size / 2
    yy, xx = np.mgrid[0:size, 0:size]
    dist = np.hypot(xx + 0.5 - r, yy + 0.5 - r)
    assert alpha[dist > r + 1].max() == 0  # nothing outside the circle
    assert alpha[dist < r - 2].min() == 255  # opaque inside
    # The covered area is the disc's (supersampled edge): within 1 %.
    assert abs(alpha.sum() / 255 - math.pi * r * r) / (math.pi * r * r) < 0.01
    assert job["result"]["images"][-1] == entry["token_image_id"]


def test_item_card_band_is_in_the_rarity_colour(client: TestClient) -> None:
    body = {"item": {"category": "weapon", "type": "longsword", "rarity": "legendary"}, "card": True, "seed": 5}
    job = _job(client, ITEMS, body)
    card = _png(client, job["result"]["data"]["variations"][0]["card_image_id"]).convert("RGB")
    layout = card_layout(card.width, card.height)
    x0, y0, x1, y1 = layout.band_box
    band = np.asarray(card)[y0:y1, x0:x1].reshape(-1, 3)
    colour = RARITY["legendary"][1].lstrip("#")
    want = np.array([int(colour[i : i + 2], 16) for i in (0, 2, 4)])
    share = (np.abs(band.astype(int) - want).max(axis=1) == 0).mean()
    assert share >= 0.6, share  # the band is the rarity colour except where the name and rarity are lettered
    assert share < 1.0  # and it is lettered


def test_item_size_reference_states_its_lengths(client: TestClient) -> None:
    body = {"item": {"category": "potion", "rarity": "common"}, "size_reference": "coin", "seed": 9}
    data = _job(client, ITEMS, body)["result"]["data"]
    assert data["reference_length_cm"] > 0 and data["item_length_cm"] > 0
    reference = _png(client, data["variations"][0]["reference_image_id"])
    assert reference.width > 64  # the canvas grew to hold the cue


def test_subject_key_keeps_seed_base_and_descriptors(client: TestClient) -> None:
    key = "campaign-7/mira-test"
    first = _job(
        client,
        PORTRAITS,
        {"character": {"name": "Mira", "ancestry": "elf", "hair": "silver braid", "eyes": "green"}, "subject_key": key},
    )["result"]["data"]
    second = _job(
        client,
        PORTRAITS,
        {"character": {"name": "Mira", "expression": "laughing"}, "pose": "drawing a bow", "subject_key": key},
    )["result"]["data"]
    assert second["seeds"][0] == first["seeds"][0]
    assert "silver braid" in second["prompt"] and "green" in second["prompt"]
    assert "laughing" in second["prompt"]
    subject = client.get(f"{SUBJECTS}/{key}").json()
    assert subject["seed_base"] == first["seeds"][0]
    assert subject["descriptors"]["hair"] == "silver braid"
    assert len(subject["images"]) >= 2
    assert client.get(f"{SUBJECTS}/nobody/here").status_code == 404


def test_theme_is_applied_and_recorded(client: TestClient) -> None:
    detail = client.get(f"{IMAGES}/styles/ink-and-wash").json()
    data = _job(client, PORTRAITS, {"character": {"name": "Tam"}, "theme": "ink-and-wash", "seed": 11})["result"][
        "data"
    ]
    assert data["theme"]["name"] == "ink-and-wash" and data["theme"]["version"] == detail["version"]
    assert [link["name"] for link in data["theme"]["chain"]][-1] == "ink-and-wash"
    for fragment in detail["resolved"]["fragments"]:
        assert fragment in data["prompt"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (PORTRAITS, {"character": {"name": "x"}, "framing": "closeup"}, "framing"),
        (CREATURES, {"creature": {"type": "robot"}}, "creature.type"),
        (CREATURES, {"creature": {"type": "beast", "size": "Enormous"}}, "creature.size"),
        (ITEMS, {"item": {"category": "weapon", "rarity": "mythic"}}, "item.rarity"),
        (ITEMS, {"item": {"category": "sword"}}, "item.category"),
    ],
)
def test_unknown_enum_values_are_422_listing_the_allowed(
    client: TestClient, path: str, body: dict[str, Any], param: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert "one of" in error["message"] or "allowed" in error["message"]


def test_moderation_refuses_before_any_generation(client: TestClient, local: Local) -> None:
    calls = len(local.batches)
    response = client.post(
        PORTRAITS,
        json={**SMALL, "character": {"name": "Vex", "features": ["d1sembowelled entrails"]}, "theme": "storybook"},
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "moderation"
    assert error["param"] == "character.features"
    assert "gore" in error["message"]
    assert "entrails" not in error["message"]
    # Gore is ordinary content for a TTRPG table: without the children's theme it passes.
    ok = client.post(PORTRAITS, json={**SMALL, "character": {"name": "Vex", "features": ["disembowelled"]}})
    assert ok.status_code == 202, ok.text
    assert len(local.batches) == calls  # nothing refused reached the generator as a family


async def test_the_zmq_door_is_moderated_too(local: Local) -> None:
    await local.open()
    try:
        before = (await local.generator.stats())["images"]
        request = GenerateRequest(PartialRequest(prompt="a nude child"), door="zmq")
        with pytest.raises(ModerationRefused) as caught:
            await local.edge.jobs.submit("generate", request)
        assert caught.value.param == "prompt" and caught.value.error_type == "moderation"
        assert "sexual_minors" in str(caught.value) and "child" not in str(caught.value)
        assert (await local.generator.stats())["images"] == before
    finally:
        await local.close()
