"""Connections: secrets encrypted at rest, never in responses, audit entries, logs or errors."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import text

from tests.unit.api.helpers import SECRET, Api

pytestmark = pytest.mark.unit
URL = "/api/v1/connections"


def _create(api: Api, name: str = "vault", **config: object) -> dict[str, object]:
    body = {
        "name": name,
        "connector": "test_vault",
        "kind": "source",
        "config": {"password": SECRET, **config},
    }
    r = api.client.post(URL, json=body, headers=api.headers("editor"))
    assert r.status_code == 201, r.text
    created: dict[str, object] = r.json()
    return created


def test_secret_is_redacted_everywhere_it_could_leak(
    api: Api, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    created = _create(api)
    cid = created["id"]
    assert created["config"] == {"password": "**********"}
    viewer = api.headers("viewer")
    responses = [
        api.client.get(URL, headers=viewer).text,
        api.client.get(f"{URL}/{cid}", headers=viewer).text,
        api.client.post(f"{URL}/{cid}/check", headers=api.headers("operator")).text,
        api.client.get("/api/v1/audit", headers=api.headers("admin")).text,
        api.client.get("/api/v1/openapi.json").text,
    ]
    check = json.loads(responses[2])
    assert check["ok"] is False and "**********" in check["message"]
    with api.store.engine.connect() as conn:
        dump = json.dumps([list(map(str, row)) for row in conn.execute(text(
            "SELECT * FROM connections UNION ALL SELECT seq, details, actor, action, hash, "
            "prev_hash, outcome, '', '', '' FROM audit_events"
        ))])  # fmt: skip
    out, err = capfd.readouterr()
    for place in [*responses, dump, caplog.text, out, err]:
        assert SECRET not in place


def test_failing_check_and_invalid_config_do_not_echo_secrets(api: Api) -> None:
    cid = _create(api, fail=True)["id"]
    r = api.client.post(f"{URL}/{cid}/check", headers=api.headers("operator"))
    assert r.json()["ok"] is False and SECRET not in r.text and "RuntimeError" in r.text
    bad = {"name": "b", "connector": "test_vault", "kind": "source",
           "config": {"password": SECRET, "fail": {"nested": SECRET}}}  # fmt: skip
    r = api.client.post(URL, json=bad, headers=api.headers("editor"))
    assert r.status_code == 422 and SECRET not in r.text
    r = api.client.post(URL, json={**bad, "extra": SECRET}, headers=api.headers("editor"))
    assert r.status_code == 422 and SECRET not in r.text


def test_masked_secret_keeps_stored_value_on_update(api: Api) -> None:
    created = _create(api)
    cid = created["id"]
    editor = api.headers("editor")
    r = api.client.patch(
        f"{URL}/{cid}",
        json={"config": {"password": "**********", "host": "db2"}},
        headers=editor,
    )
    assert r.status_code == 200 and r.json()["config"]["host"] == "db2"
    check = api.client.post(f"{URL}/{cid}/check", headers=editor).json()
    assert check["message"] == "authentication failed with password **********"
    platform = api.app.state.platform
    from aggregator.api.services.connections import decrypted_config
    from aggregator.metadata.control_models import Connection

    with api.store.session() as s:
        row = s.get(Connection, cid)
        assert row is not None
        assert decrypted_config(platform.box, row)["password"] == SECRET


def test_ciphertext_is_bound_to_its_row(api: Api) -> None:
    a, b = _create(api, "a")["id"], _create(api, "b")["id"]
    with api.store.engine.begin() as conn:
        conn.execute(text(
            "UPDATE connections SET secrets_ciphertext = "
            "(SELECT secrets_ciphertext FROM connections WHERE id = :a) WHERE id = :b"
        ), {"a": a, "b": b})  # fmt: skip
    r = api.client.post(f"{URL}/{b}/check", headers=api.headers("editor"))
    assert r.status_code == 500 and SECRET not in r.text
    assert "traceback" not in r.text.lower()
    assert r.json()["error"]["code"] == "secrets_unreadable"


def test_connections_are_workspace_scoped_and_crud(api: Api) -> None:
    created = _create(api)
    cid = created["id"]
    editor = api.headers("editor")
    assert api.client.post(URL, json={
        "name": "vault", "connector": "test_vault", "kind": "source", "config": {"password": "x"}
    }, headers=editor).status_code == 409  # fmt: skip
    unknown = {"name": "u", "connector": "nope", "kind": "source", "config": {}}
    r = api.client.post(URL, json=unknown, headers=editor)
    assert r.status_code == 422 and "unknown source connector" in r.json()["error"]["message"]
    assert api.client.delete(f"{URL}/{cid}", headers=editor).status_code == 204
    assert api.client.get(f"{URL}/{cid}", headers=editor).status_code == 404


def test_catalog_lists_connectors_with_schemas(api: Api) -> None:
    r = api.client.get("/api/v1/connectors", headers=api.headers("viewer"))
    vault = next(c for c in r.json() if c["name"] == "test_vault")
    assert vault["config_schema"]["properties"]["password"]["writeOnly"] is True
    one = api.client.get("/api/v1/connectors/source/test_vault", headers=api.headers("viewer"))
    assert one.status_code == 200
