"""Data preview (filter, sort, paging, injection attempts), schema history, lineage with
column mappings, OpenLineage events, quality results and profiles, sessions."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.unit.api.helpers import Api

pytestmark = pytest.mark.unit
URL = "/api/v1/pipelines"


def _spec(tmp_path: Path, rows: int, dest: str = "duckdb", **extra: Any) -> dict[str, Any]:
    path = tmp_path / ("wh.duckdb" if dest == "duckdb" else "wh.sqlite")
    return {
        "name": extra.pop("name", "shop"),
        "sources": [
            {
                "name": "gen",
                "type": "test_sequence",
                "config": {"rows": rows, "batch": 40, **extra.pop("config", {})},
                "streams": [
                    {
                        "name": "numbers",
                        "table": "orders",
                        "cursor_field": "id",
                        "primary_key": ["id"],
                        "write_mode": "merge",
                        "transforms": [
                            {"step": "rename", "columns": {"amount": "total"}},
                            {"step": "derive", "column": "doubled", "expr": "total * 2 + id"},
                        ],
                        "checks": [
                            {"check": "range", "column": "id", "max": 90, "severity": "warn"}
                        ],
                        "profile": True,
                        **extra,
                    }
                ],
            }
        ],
        "destination": {"type": dest, "config": {"path": str(path)}},
    }


def _run(api: Api, pid: str) -> dict[str, Any]:
    r = api.client.post(f"{URL}/{pid}/runs", json={}, headers=api.headers("operator"))
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run: dict[str, Any] = api.client.get(
            f"/api/v1/runs/{run_id}", headers=api.headers("viewer")
        ).json()
        if run["status"] != "running":
            assert run["status"] == "succeeded", run
            return run
        time.sleep(0.05)
    raise AssertionError("run did not finish")


def _pipeline(api: Api, spec: dict[str, Any]) -> str:
    r = api.client.post(URL, json={"spec": spec}, headers=api.headers("editor"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _preview(api: Api, pid: str, **params: Any) -> Any:
    return api.client.get(
        f"{URL}/{pid}/streams/numbers/preview", params=params, headers=api.headers("viewer")
    )


@pytest.mark.parametrize("dest", ["duckdb", "sqlite"])
def test_preview_filters_sorts_and_pages(api: Api, tmp_path: Path, dest: str) -> None:
    pid = _pipeline(api, _spec(tmp_path, 100, dest))
    _run(api, pid)
    r = _preview(api, pid, filter="id > 10 and id <= 20 and not id in (12, 13)", sort="-id")
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["table"] == "orders" and page["pipeline"] == "shop"
    names = [c["name"] for c in page["columns"]]
    assert names[:2] == ["id", "total"] and "doubled" in names
    assert [row["id"] for row in page["rows"]] == [20, 19, 18, 17, 16, 15, 14, 11]
    first = page["rows"][0]
    assert Decimal(first["total"]) == Decimal("0.20")  # exact, as a string
    assert Decimal(str(first["doubled"])) == Decimal("20.40")

    pages, offset = [], 0
    while True:
        got = _preview(api, pid, sort="id", limit=30, offset=offset, count="true").json()
        assert got["total"] == 100
        pages += [row["id"] for row in got["rows"]]
        offset += 30
        if not got["has_more"]:
            break
    assert pages == list(range(1, 101))

    assert [x["id"] for x in _preview(api, pid, filter="id between 5 and 7").json()["rows"]] == [
        5,
        6,
        7,
    ]
    assert _preview(api, pid, filter="total is null").json()["rows"] == []
    assert _preview(api, pid, filter="ID = 3").json()["rows"][0]["id"] == 3  # case folded


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("id = 1; drop table orders", "one expression"),
        ("id = (select max(id) from orders)", "expected a value"),
        ("lower(total) = 'x'", "compare a column with a value"),
        ("nope = 1", "unknown column 'nope'"),
        ("id = total", "expected a value"),
        ("orders.id = 1", "expected a column name"),
        ("id in (select id from _aggregator_state)", "IN takes a list of values"),
        ("id = ", "cannot parse"),
        ("1 = 1", "compare a column with a value"),
        ("id = 1 or 1 = 1", "compare a column with a value"),
    ],
)
def test_preview_refuses_anything_but_whitelisted_predicates(
    api: Api, tmp_path: Path, bad: str, says: str
) -> None:
    pid = _pipeline(api, _spec(tmp_path, 10))
    _run(api, pid)
    r = _preview(api, pid, filter=bad)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_filter"
    assert says in r.json()["error"]["message"]


def test_preview_binds_values_and_validates_sort(api: Api, tmp_path: Path) -> None:
    pid = _pipeline(api, _spec(tmp_path, 10))
    _run(api, pid)
    injected = _preview(api, pid, filter="total = '1'' or ''1''=''1'")
    assert injected.status_code == 422  # a string compared with a decimal: refused, not run
    sort = _preview(api, pid, sort="id; drop table orders --")
    assert sort.status_code == 422 and "unknown column" in sort.json()["error"]["message"]
    assert _preview(api, pid, sort='"id"').status_code == 422
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (10,)
    unknown = api.client.get(
        f"{URL}/{pid}/streams/_aggregator_state/preview", headers=api.headers("viewer")
    )
    assert unknown.status_code == 404


def test_schema_history_lineage_and_openlineage(api: Api, tmp_path: Path) -> None:
    pid = _pipeline(api, _spec(tmp_path, 50))
    first = _run(api, pid)
    spec = _spec(tmp_path, 80, config={"extra_column_from": 41, "version": 2})
    r = api.client.put(f"{URL}/{pid}", json={"spec": spec}, headers=api.headers("editor"))
    assert r.status_code == 200, r.text
    second = _run(api, pid)
    viewer = api.headers("viewer")

    current = api.client.get(f"{URL}/{pid}/schemas", headers=viewer).json()
    assert [(x["stream"], x["table"], x["version"]) for x in current] == [("numbers", "orders", 2)]
    assert [c["name"] for c in current[0]["columns"]] == [
        "id",
        "total",
        "version",
        "doubled",
        "note",
    ]
    history = api.client.get(f"{URL}/{pid}/streams/numbers/schemas", headers=viewer).json()
    assert [v["version"] for v in history] == [1, 2]
    assert history[0]["run_id"] == first["run_id"] and history[1]["run_id"] == second["run_id"]
    assert history[1]["diff"] == {"added": [{"name": "note", "type": "string"}], "widened": []}

    graph = api.client.get(f"/api/v1/lineage?pipeline_id={pid}", headers=viewer).json()
    warehouse = f"duckdb://{(tmp_path / 'wh.duckdb').resolve()}/main.orders"
    source = "aggregator://shop/gen/numbers"
    assert {(e["source"], e["target"]) for e in graph["edges"]} == {
        (source, "job:shop"),
        ("job:shop", warehouse),
    }
    columns = {c["column"]: c for c in graph["columns"]}
    assert columns["total"]["inputs"] == [{"dataset": source, "column": "amount"}]
    assert columns["total"]["transformation"] == "IDENTITY"
    assert columns["doubled"]["inputs"] == [
        {"dataset": source, "column": "amount"},
        {"dataset": source, "column": "id"},
    ]
    assert columns["doubled"]["transformation"] == "TRANSFORMATION"
    assert graph["coverage"] == [{"pipeline": "shop", "stream": "numbers", "complete": True}]

    events = api.client.get(f"/api/v1/runs/{second['run_id']}/openlineage", headers=viewer)
    assert events.status_code == 200, events.text
    start, end = events.json()
    assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == end["run"]["runId"] == second["run_id"]
    assert end["job"] == {**end["job"], "namespace": "aggregator", "name": "shop"}
    assert end["schemaURL"] == "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
    assert end["inputs"] == [
        {"namespace": "aggregator://shop/gen", "name": "numbers", "facets": {}}
    ]
    (out,) = end["outputs"]
    assert (out["namespace"], out["name"]) == (
        f"duckdb://{(tmp_path / 'wh.duckdb').resolve()}",
        "main.orders",
    )
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 30  # rows 51..80
    fields = out["facets"]["columnLineage"]["fields"]
    assert fields["total"]["inputFields"] == [
        {
            "namespace": "aggregator://shop/gen",
            "name": "numbers",
            "field": "amount",
            "transformation": "IDENTITY",
        }
    ]
    assert [f["name"] for f in out["facets"]["schema"]["fields"]][-1] == "note"
    for facet in (*out["facets"].values(), *out["outputFacets"].values()):
        assert facet["_producer"].startswith("urn:aggregator:")
        assert facet["_schemaURL"].startswith("https://openlineage.io/spec/facets/")
    exported = api.client.get("/api/v1/lineage/events?pipeline=shop", headers=viewer).json()
    assert [(e["run"]["runId"], e["eventType"]) for e in exported] == [
        (first["run_id"], "START"),
        (first["run_id"], "COMPLETE"),
        (second["run_id"], "START"),
        (second["run_id"], "COMPLETE"),
    ]


def test_dependencies_link_pipelines_through_tables(api: Api, tmp_path: Path) -> None:
    warehouse = str(tmp_path / "shared.sqlite")
    upstream = _spec(tmp_path, 5, "sqlite", name="load")
    upstream["destination"]["config"]["path"] = warehouse
    up = _pipeline(api, upstream)
    downstream = {
        "name": "reuse",
        "sources": [
            {
                "name": "wh",
                "type": "sqlite",
                "config": {"path": warehouse},
                "streams": [{"name": "orders", "table": "orders_copy"}],
            }
        ],
        "destination": {"type": "duckdb", "config": {"path": str(tmp_path / "other.duckdb")}},
    }
    down = _pipeline(api, downstream)
    viewer = api.headers("viewer")
    deps = api.client.get(f"{URL}/{down}/dependencies", headers=viewer).json()
    dataset = f"sqlite://{Path(warehouse).resolve()}/orders"
    assert deps == {
        "pipeline": "reuse",
        "upstream": [{"id": up, "name": "load", "datasets": [dataset]}],
        "downstream": [],
    }
    deps = api.client.get(f"{URL}/{up}/dependencies", headers=viewer).json()
    assert deps["downstream"] == [{"id": down, "name": "reuse", "datasets": [dataset]}]


def test_quality_results_and_profiles(api: Api, tmp_path: Path) -> None:
    pid = _pipeline(api, _spec(tmp_path, 100))
    run = _run(api, pid)
    viewer = api.headers("viewer")
    results = api.client.get(f"/api/v1/runs/{run['run_id']}/quality", headers=viewer).json()
    (check,) = [r for r in results if r["kind"] == "range"]
    assert (check["status"], check["checked"], check["failed"]) == ("warned", 100, 10)
    assert check["column"] == "id" and check["stream"] == "numbers"
    listed = api.client.get(f"{URL}/{pid}/quality?status=warned", headers=viewer).json()
    assert [r["check"] for r in listed] == [check["check"]]
    assert api.client.get(f"{URL}/{pid}/quality?status=failed", headers=viewer).json() == []
    profile = api.client.get(f"{URL}/{pid}/streams/numbers/profile", headers=viewer)
    assert profile.status_code == 200, profile.text
    body = profile.json()
    assert body["run_id"] == run["run_id"] and body["rows_in"] == 100
    assert set(body["columns"]) >= {"id", "total", "doubled"}
    history = api.client.get(f"{URL}/{pid}/streams/numbers/profiles", headers=viewer).json()
    assert [h["run_id"] for h in history] == [run["run_id"]]
    missing = api.client.get(f"{URL}/{pid}/streams/other/profile", headers=viewer)
    assert missing.status_code == 404


def test_sessions_own_and_admin(api: Api) -> None:
    first = api.login("viewer@example.com").json()
    second = api.login("viewer@example.com").json()
    mine = {"Authorization": f"Bearer {second['access_token']}"}
    listed = api.client.get("/api/v1/sessions", headers=mine).json()
    assert len(listed) == 2 and [s["current"] for s in listed] == [True, False]
    other = listed[1]["id"]
    r = api.client.delete(f"/api/v1/sessions/{other}", headers=mine)
    assert r.status_code == 204
    gone = api.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {first['access_token']}"}
    )
    assert gone.status_code == 401
    ended = api.client.get("/api/v1/sessions?include_ended=true", headers=mine).json()
    assert [s["active"] for s in ended] == [True, False]
    assert ended[1]["revoked_reason"] == "revoked by user:viewer@example.com"

    editor_session = api.client.get("/api/v1/sessions", headers=api.headers("editor")).json()
    foreign = api.client.delete(f"/api/v1/sessions/{editor_session[0]['id']}", headers=mine)
    assert foreign.status_code == 404

    viewer_id = api.users["viewer"].id
    admin = api.headers("admin")
    assert api.client.get(f"/api/v1/users/{viewer_id}/sessions", headers=mine).status_code == 403
    sessions = api.client.get(f"/api/v1/users/{viewer_id}/sessions", headers=admin).json()
    assert [s["id"] for s in sessions] == [listed[0]["id"]]
    r = api.client.delete(f"/api/v1/users/{viewer_id}/sessions/{listed[0]['id']}", headers=admin)
    assert r.status_code == 204
    assert api.client.get("/api/v1/auth/me", headers=mine).status_code == 401
    actions = [e["action"] for e in api.client.get("/api/v1/audit", headers=admin).json()]
    assert actions.count("session.revoked") == 2


ATTACKS = ["' OR '1'='1", "1; DROP TABLE orders; --", "../../../../etc/passwd", "%2e%2e%2f", "\x00"]


def test_attack_strings_in_every_preview_parameter(api: Api, tmp_path: Path) -> None:
    from urllib.parse import quote

    pid = _pipeline(api, _spec(tmp_path, 10))
    _run(api, pid)
    viewer = api.headers("viewer")
    for attack in ATTACKS:
        for params in ({"filter": attack}, {"sort": attack}, {"filter": f"id = '{attack}'"}):
            r = _preview(api, pid, **params)
            assert r.status_code == 422, (params, r.status_code, r.text)
        path = f"{URL}/{pid}/streams/{quote(attack, safe='')}/preview"
        r = api.client.get(path, headers=viewer, follow_redirects=False)
        assert r.status_code in (404, 307), (path, r.status_code)
        for path in (
            f"{URL}/{pid}/streams/{quote(attack, safe='')}/schemas",
            f"/api/v1/runs/{quote(attack, safe='')}/logs",
            f"/api/v1/runs/{quote(attack, safe='')}/openlineage",
        ):
            r = api.client.get(path, headers=viewer, follow_redirects=False)
            assert r.status_code in (404, 307), (path, r.status_code)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (10,)
