"""The styles (themes) API: built-in packs, CRUD with immutable versions, pinned references, preview,
pagination, and the 403/404/409/422 cases."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

STYLES = "/api/v2/images/styles"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(STYLES, json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"].endswith(response.json()["id"])
    return response.json()


def test_builtin_packs_are_listed_and_read_only(client: TestClient) -> None:
    items = client.get(f"{STYLES}?builtin=true&limit=200").json()["items"]
    names = {i["name"] for i in items}
    core = {i["name"] for i in items if i["pack"] == "core"}
    assert len(core) >= 8
    assert {"experimance", "experimance-wilderness"} <= names  # the installation's styles are a pack too
    response = client.put(f"{STYLES}/ink-and-wash", json={"fragments": ["changed"]})
    assert response.status_code == 403 and response.json()["error"]["type"] == "forbidden"
    assert client.delete(f"{STYLES}/ink-and-wash").status_code == 403


def test_cursor_pagination_walks_every_theme_once(client: TestClient) -> None:
    everything = [i["name"] for i in client.get(f"{STYLES}?limit=200").json()["items"]]
    seen: list[str] = []
    cursor = None
    while True:
        query = f"{STYLES}?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query).json()
        seen += [i["name"] for i in page["items"]]
        assert len(page["items"]) <= 3
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything == sorted(everything)


def test_kind_filter_follows_inherited_kinds(client: TestClient) -> None:
    parent = _name("maps-only")
    _create(client, {"name": parent, "fragments": ["inked lines"], "kinds": ["generate"]})
    child = _name("child")
    _create(client, {"name": child, "parent": parent})
    portrait_themes = {i["name"] for i in client.get(f"{STYLES}?kind=portrait&limit=200").json()["items"]}
    generate_themes = {i["name"] for i in client.get(f"{STYLES}?kind=generate&limit=200").json()["items"]}
    assert parent not in portrait_themes and child not in portrait_themes
    assert {parent, child} <= generate_themes
    refused = client.post("/api/v2/images/portraits", json={"character": {"name": "a"}, "theme": child})
    assert refused.status_code == 422 and refused.json()["error"]["param"] == "theme"


def test_create_read_update_versions_and_pinned_reads(client: TestClient) -> None:
    name = _name("our-campaign")
    created = _create(
        client,
        {
            "name": name,
            "parent": "ink-and-wash",
            "fragments": ["misty northern coast"],
            "palette": ["#FF0000"],
            "variations": {"storm": {"fragments": ["driving rain"]}},
        },
    )
    assert created["version"] == 1
    assert created["raw"]["palette"] == ["#ff0000"]
    resolved = created["resolved"]
    parent = client.get(f"{STYLES}/ink-and-wash").json()["resolved"]
    assert resolved["fragments"][: len(parent["fragments"])] == parent["fragments"]  # inherited first
    assert resolved["fragments"][-1] == "misty northern coast"
    assert "red" in resolved["prompt_template"]

    stormy = client.get(f"{STYLES}/{name}?variation=storm").json()["resolved"]
    assert stormy["fragments"][-1] == "driving rain" and stormy["variation"] == "storm"

    updated = client.put(f"{STYLES}/{created['id']}", json={"parent": "ink-and-wash", "fragments": ["sunlit cliffs"]})
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert client.get(f"{STYLES}/{name}").json()["raw"]["fragments"] == ["sunlit cliffs"]
    old = client.get(f"{STYLES}/{name}@1").json()
    assert old["version"] == 1 and old["raw"]["fragments"] == ["misty northern coast"]  # immutable
    versions = client.get(f"{STYLES}/{name}/versions").json()["items"]
    assert [v["version"] for v in versions] == [1, 2]
    assert client.get(f"{STYLES}/{name}@9").status_code == 404


def test_errors(client: TestClient) -> None:
    assert client.get(f"{STYLES}/no-such-theme").status_code == 404
    name = _name("dup")
    _create(client, {"name": name})
    assert client.post(STYLES, json={"name": name}).status_code == 409
    unknown_key = client.post(STYLES, json={"name": _name("x"), "colour": "red"})
    assert unknown_key.status_code == 422 and unknown_key.json()["error"]["param"] == "colour"
    bad_colour = client.post(STYLES, json={"name": _name("x"), "palette": ["crimson"]})
    assert bad_colour.status_code == 422 and bad_colour.json()["error"]["param"].startswith("palette")
    missing_parent = client.post(STYLES, json={"name": _name("x"), "parent": "nope-nope"})
    assert missing_parent.status_code == 422 and missing_parent.json()["error"]["param"] == "parent"
    bad_steps = client.post(STYLES, json={"name": _name("x"), "settings": {"steps": 100000}})
    assert bad_steps.status_code == 422 and bad_steps.json()["error"]["param"].startswith("settings")
    bad_kind = client.post(STYLES, json={"name": _name("x"), "kinds": ["sculpture"]})
    assert bad_kind.status_code == 422 and bad_kind.json()["error"]["param"] == "kinds"


def test_a_cycle_is_refused_and_nothing_changes(client: TestClient) -> None:
    a, b = _name("a"), _name("b")
    _create(client, {"name": a, "fragments": ["one"]})
    _create(client, {"name": b, "parent": a})
    response = client.put(f"{STYLES}/{a}", json={"parent": b})
    assert response.status_code == 422, response.text
    assert "cycle" in response.json()["error"]["message"]
    assert client.get(f"{STYLES}/{a}").json()["version"] == 1


def test_delete_says_what_still_depends_on_it(client: TestClient) -> None:
    parent, child = _name("parent"), _name("child")
    _create(client, {"name": parent})
    _create(client, {"name": child, "parent": parent})
    refused = client.delete(f"{STYLES}/{parent}")
    assert refused.status_code == 409 and child in refused.json()["error"]["message"]
    assert client.delete(f"{STYLES}/{child}").status_code == 200
    deleted = client.delete(f"{STYLES}/{parent}")
    assert deleted.status_code == 200 and deleted.json()["deleted_at"] is not None
    assert client.get(f"{STYLES}/{parent}").status_code == 404
    assert client.get(f"{STYLES}/{parent}/versions").status_code == 200  # its history stays


def test_delete_of_a_theme_used_recently_needs_force(client: TestClient) -> None:
    name = _name("used")
    _create(client, {"name": name})
    job = client.post("/api/v2/images/jobs", json={"prompt": "a tower", "theme": name, "width": 64, "height": 64})
    assert job.status_code == 202, job.text
    refused = client.delete(f"{STYLES}/{name}")
    assert refused.status_code == 409 and "force" in refused.json()["error"]["message"]
    assert client.delete(f"{STYLES}/{name}?force=true").status_code == 200


def test_preview_composes_without_generating(client: TestClient) -> None:
    long = [f"fragment number {i} with several words" for i in range(20)]
    name = _name("wordy")
    _create(client, {"name": name, "parent": "ink-and-wash", "fragments": long})
    for kind in ("generate", "portrait", "creature", "item"):
        response = client.post(f"{STYLES}/{name}/preview", json={"kind": kind})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["theme"]["name"] == name
        assert long[0] in body["requests"][0]["prompt"]
        assert body["warnings"] and long[-1] in body["warnings"][0]  # past the 77-token window
    bad = client.post(f"{STYLES}/{name}/preview", json={"kind": "sculpture"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "kind"


def test_moderated_theme_text_is_refused(client: TestClient) -> None:
    response = client.post(STYLES, json={"name": _name("bad"), "fragments": ["nude schoolgirl"]})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "moderation"
