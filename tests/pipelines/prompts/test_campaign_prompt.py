"""pipelines/prompts/campaign.py: the campaign layout sketch (terrain colours at scaled region interiors, plains for
uncovered land, later regions on top, a dark coast where water meets land and nowhere else, blue rivers, nothing
else) and the prompt (terrains by shown area, the user's prompt, a negative that keeps text out)."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from pipelines.errors import InputError
from pipelines.overlay.campaign import TERRAINS, CampaignSpec, parse_campaign
from pipelines.prompts.campaign import (
    CAMPAIGN_NEGATIVE,
    COAST_COLOUR,
    RIVER_COLOUR,
    campaign_prompt,
    campaign_sketch,
    describe_campaign,
    line_width,
    terrain_areas,
)

RGB = tuple[int, int, int]


def _rgb(name: str) -> RGB:
    colour = TERRAINS[name].color
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def _luma(rgb: RGB) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _doc(**extra: Any) -> dict[str, Any]:
    """A 400 x 300 canvas: sea on the left quarter, a forest, mountains over part of the forest, a lake inside the
    forest, a river, a road; the rest plains."""
    doc: dict[str, Any] = {
        "canvas": {"width": 400, "height": 300},
        "scale": {"miles_per_pixel": 0.5},
        "regions": [
            {"name": "Sea", "terrain": "water", "polygon": [[0, 0], [100, 0], [100, 300], [0, 300]]},
            {"name": "Wood", "terrain": "forest", "polygon": [[150, 50], [350, 50], [350, 250], [150, 250]]},
            {"name": "Peaks", "terrain": "mountains", "polygon": [[300, 20], [390, 20], [390, 120], [300, 120]]},
            {"name": "Mere", "terrain": "lake", "polygon": [[200, 150], [260, 150], [260, 210], [200, 210]]},
        ],
        "pois": [{"name": "A", "kind": "town", "x": 120, "y": 280}, {"name": "B", "kind": "town", "x": 380, "y": 280}],
        "routes": [
            {"kind": "river", "name": "Run", "points": [[100, 20], [140, 20]]},
            {"kind": "road", "from": "A", "to": "B"},
        ],
    }
    doc.update(extra)
    return doc


def _spec(**extra: Any) -> CampaignSpec:
    return parse_campaign(_doc(**extra))


def _colours(image: Image.Image) -> set[RGB]:
    return {colour for _, colour in image.getcolors(image.width * image.height) or []}  # type: ignore[misc]


def _at(image: Image.Image, spec: CampaignSpec, x: float, y: float) -> RGB:
    """The sketch pixel under canvas point ``(x, y)``."""
    w, h = image.size
    return image.getpixel((int(x * w / spec.width), int(y * h / spec.height)))  # type: ignore[return-value]


# -- the sketch -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(400, 300), (800, 600), (200, 240), (1024, 768)])
def test_region_interiors_have_their_terrain_colours(size: tuple[int, int]) -> None:
    spec = _spec()
    image = campaign_sketch(spec, *size)
    assert image.size == size and image.mode == "RGB"
    assert _at(image, spec, 50, 150) == _rgb("water")
    assert _at(image, spec, 180, 100) == _rgb("forest")
    assert _at(image, spec, 340, 200) == _rgb("forest")
    # Later regions over earlier ones: the mountains over the forest's corner, the lake inside the forest.
    assert _at(image, spec, 320, 80) == _rgb("mountains")
    assert _at(image, spec, 230, 180) == _rgb("lake")
    # Uncovered land is plains, on both axes' far ends.
    assert _at(image, spec, 125, 150) == _rgb("plains")
    assert _at(image, spec, 395, 295) == _rgb("plains")
    assert _at(image, spec, 380, 200) == _rgb("plains")


def test_an_empty_map_is_plains() -> None:
    spec = parse_campaign({"canvas": {"width": 64, "height": 64}, "scale": {"miles_per_pixel": 1}})
    image = campaign_sketch(spec, 32, 48)
    assert _colours(image) == {_rgb("plains")}


def test_the_coast_is_darker_than_both_sides() -> None:
    spec = _spec()
    image = campaign_sketch(spec, 800, 600)
    row = [image.getpixel((x, 300)) for x in range(800)]
    coast = [x for x, c in enumerate(row[:300]) if c == COAST_COLOUR]  # the lake's shore is further right
    # The sea ends at canvas x = 100, sketch x = 200: the band straddles it.
    assert coast and min(coast) < 200 <= max(coast)
    assert max(coast) - min(coast) + 1 == line_width(800, 600)
    water, land = row[min(coast) - 1], row[max(coast) + 1]
    assert water == _rgb("water") and land == _rgb("plains")
    assert _luma(COAST_COLOUR) < _luma(water) and _luma(COAST_COLOUR) < _luma(land)
    # The lake's shore is a coast too, and the coast is darker than every terrain.
    lake_row = [image.getpixel((x, 360)) for x in range(380, 540)]
    assert COAST_COLOUR in lake_row
    assert all(_luma(COAST_COLOUR) < _luma(_rgb(t)) for t in TERRAINS)


def test_no_coast_between_land_regions_or_at_the_image_edge() -> None:
    spec = _spec()
    image = campaign_sketch(spec, 800, 600)
    # The forest meets the plains at canvas x = 150 and the mountains at y = 120: no line there.
    assert COAST_COLOUR not in [image.getpixel((x, 300)) for x in range(280, 320)]
    assert COAST_COLOUR not in [image.getpixel((660, y)) for y in range(220, 260)]
    # The sea runs off the image: its edges are no coast.
    assert COAST_COLOUR not in [image.getpixel((x, 0)) for x in range(0, 190)]
    assert COAST_COLOUR not in [image.getpixel((0, y)) for y in range(600)]


def test_water_hidden_by_land_makes_no_coast() -> None:
    doc = _doc()
    doc["regions"] = [
        {"name": "Sea", "terrain": "water", "polygon": [[0, 0], [100, 0], [100, 300], [0, 300]]},
        {"name": "Isle", "terrain": "grassland", "polygon": [[20, 20], [80, 20], [80, 80], [20, 80]]},
        {"name": "Cover", "terrain": "desert", "polygon": [[0, 150], [400, 150], [400, 300], [0, 300]]},
    ]
    doc["routes"] = []
    spec = parse_campaign(doc)
    image = campaign_sketch(spec, 400, 300)
    assert _at(image, spec, 50, 50) == _rgb("grassland")
    assert COAST_COLOUR in [image.getpixel((x, 50)) for x in range(10, 30)]  # the island's shore
    assert COAST_COLOUR not in [image.getpixel((x, 220)) for x in range(80, 120)]  # desert over the sea's foot


def test_rivers_are_blue_lines_and_roads_are_not_drawn() -> None:
    spec = _spec()
    image = campaign_sketch(spec, 800, 600)
    assert image.getpixel((250, 40)) == RIVER_COLOUR  # the river at canvas (125, 20)
    column = [image.getpixel((250, y)) for y in range(30, 50)]
    assert column.count(RIVER_COLOUR) == line_width(800, 600)
    colours = _colours(image)
    allowed = {_rgb(t) for t in TERRAINS} | {COAST_COLOUR, RIVER_COLOUR}
    assert colours <= allowed  # no road, label or anti-aliased pixel
    assert image.getpixel((500, 560)) == _rgb("plains")  # on the road from A to B


def test_sketch_sizes_are_checked() -> None:
    spec = _spec()
    with pytest.raises(InputError) as err:
        campaign_sketch(spec, 0, 10)
    assert err.value.param == "width"
    with pytest.raises(InputError) as err:
        campaign_sketch(spec, 10, 2.5)  # type: ignore[arg-type]
    assert err.value.param == "height"
    assert campaign_sketch(spec, 1, 1).size == (1, 1)


# -- the prompt -----------------------------------------------------------------------------------------------------


def test_terrains_by_shown_area() -> None:
    areas = terrain_areas(_spec())
    # The mountains hide 50 x 70 of the forest, the lake 60 x 60; plains are the rest of the canvas.
    assert list(areas) == ["plains", "forest", "water", "mountains", "lake"]
    assert areas["water"] == pytest.approx(100 * 300)
    assert areas["forest"] == pytest.approx(200 * 200 - 50 * 70 - 60 * 60)
    assert areas["mountains"] == pytest.approx(90 * 100)
    assert areas["plains"] == pytest.approx(400 * 300 - 30000 - 40000 - (90 * 100 - 50 * 70))
    assert sum(areas.values()) == pytest.approx(400 * 300)


def test_prompt_names_the_dominant_terrains_in_order() -> None:
    subject, negative = campaign_prompt(_spec(), None)
    assert subject.startswith("fantasy world map, top-down, ")
    words = [TERRAINS[t].prompt for t in ("plains", "forest", "water", "mountains", "lake")]
    positions = [subject.index(w) for w in words]
    assert positions == sorted(positions)
    assert "winding rivers" in subject
    assert subject.endswith("no text, no labels")
    assert "text" in negative and "labels" in negative and "grid" in negative
    assert negative == CAMPAIGN_NEGATIVE


def test_prompt_order_follows_area_not_spec_order() -> None:
    doc = _doc(routes=[])
    doc["regions"] = [
        {"name": "Dunes", "terrain": "desert", "polygon": [[0, 0], [400, 0], [400, 300], [0, 300]]},
        {"name": "Bog", "terrain": "swamp", "polygon": [[0, 0], [300, 0], [300, 300], [0, 300]]},
        {"name": "Snow", "terrain": "snow", "polygon": [[0, 0], [50, 0], [50, 50], [0, 50]]},
    ]
    subject = describe_campaign(parse_campaign(doc))
    assert subject == "swamps and marshes, desert, snowfields"


def test_the_user_prompt_wins() -> None:
    subject, negative = campaign_prompt(_spec(), "  the Shattered Isles,, in autumn ")
    assert subject == "fantasy world map, top-down, the Shattered Isles, in autumn, no text, no labels"
    assert "text" in negative
    assert campaign_prompt(_spec(), "   ")[0] == campaign_prompt(_spec(), None)[0]


def test_an_empty_map_is_described_as_plains() -> None:
    spec = parse_campaign({"canvas": {"width": 64, "height": 64}, "scale": {"miles_per_pixel": 1}})
    assert campaign_prompt(spec, None)[0] == "fantasy world map, top-down, open plains, no text, no labels"
