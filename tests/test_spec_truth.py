"""The API says what it does: unknown query parameters are refused like unknown body fields,
every error has one shape, and the committed spec marks what can be null."""

import io
import json

import pytest

from guideapp.config import PROJECT_ROOT
from tests.conftest import GUIDE, HQ, MANAGER
from tests.factories import store_by_code
from tests.scan_factories import make_code

SPEC = json.loads((PROJECT_ROOT / "api_spec" / "openapi.json").read_text())


def assert_error_shape(response, status):
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"code", "status", "message", "errors"}, body
    assert body["code"] == status and body["message"] and isinstance(body["errors"], dict)
    return body


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/stores?colour=red",  # a list with filters
        "/api/v1/regions?limit=5&colour=red",  # a plain list: limit/cursor and nothing else
        "/api/v1/me?colour=red",  # a view that reads no query at all
        "/api/v1/inbox?colour=red",  # kept parses (keep_parsed)
        "/api/v1/sync/pull?last_pulled_at=null&colour=red",
    ],
)
def test_unknown_query_parameters_are_refused_by_name(api, url):
    body = assert_error_shape(api.get(GUIDE, url), 422)
    assert body["errors"] == {"colour": ["Unknown field."]}


def test_limit_and_cursor_are_refused_where_nothing_is_paged(api, session):
    store = store_by_code(session, "SH001")
    for query in ("limit=5", "cursor=abc"):
        body = assert_error_shape(api.get(HQ, f"/api/v1/stores/{store.id}?{query}"), 422)
        assert list(body["errors"]) == [query.split("=")[0]]


def test_code_stats_refuse_the_parameters_nobody_reads(api, session):
    code = make_code(session, author_phone=HQ, kind="lbs")
    url = f"/api/v1/codes/{code.id}/stats"
    assert api.get(HQ, f"{url}?from=2026-11-01&to=2026-11-30").status_code == 200
    for unread in ("by=day", "start=2026-11-01"):
        body = assert_error_shape(api.get(HQ, f"{url}?{unread}"), 422)
        assert list(body["errors"]) == [unread.split("=")[0]]


def test_the_inbox_keeps_parses_and_still_refuses_unknown_parameters(api):
    for _ in range(2):  # the second answer comes from the kept parse
        assert api.get(GUIDE, "/api/v1/inbox?bucket=today").status_code == 200
        assert api.get(GUIDE, "/api/v1/inbox?bucket=today&x=1").status_code == 422
        assert api.get(GUIDE, "/api/v1/inbox?bucket=someday").status_code == 422


def test_field_errors_sit_at_the_top_whatever_the_location(api, session):
    body = assert_error_shape(api.post(HQ, "/api/v1/stores", json={"code": "x y"}), 422)
    assert {"code", "name", "region_id"} <= set(body["errors"])  # json
    body = assert_error_shape(api.get(HQ, "/api/v1/stores?state=melted"), 422)
    assert set(body["errors"]) == {"state"}  # query
    upload = api.client.post(
        "/api/v1/uploads",
        data={"wrong": (io.BytesIO(b"x"), "a.png")},
        headers=api.headers(MANAGER),
        content_type="multipart/form-data",
    )
    body = assert_error_shape(upload, 422)
    assert set(body["errors"]) == {"file", "wrong"}  # files
    not_an_object = api.post(HQ, "/api/v1/stores", json=[1, 2])
    assert set(assert_error_shape(not_an_object, 422)["errors"]) == {"_schema"}


def test_errors_without_fields_still_carry_an_empty_errors_object(api, client, session):
    store = store_by_code(session, "SH001")
    assert assert_error_shape(api.get(GUIDE, "/api/v1/nothing-here"), 404)["errors"] == {}
    assert assert_error_shape(client.get("/api/v1/me"), 401)["errors"] == {}
    closing = api.post(GUIDE, f"/api/v1/stores/{store.id}/close")
    assert assert_error_shape(closing, 403)["errors"] == {}
    assert assert_error_shape(client.delete("/api/v1/auth/login"), 405)["errors"] == {}


@pytest.mark.parametrize(
    "schema, field",
    [
        ("Staff", "left_at"),
        ("Material", "owner_store_id"),
        ("Material", "owner_staff_id"),
        ("CommissionRule", "created_by"),
        ("CommissionRule", "order_basis"),
        ("Task", "assignee_id"),
        ("Task", "campaign_id"),
        ("Task", "sop_rule_id"),
        ("Task", "calendar_item_id"),
        ("Tag", "store_id"),
        ("TagGroup", "store_id"),
        ("Campaign", "published_at"),
        ("Member", "phone"),
        ("MemberSummary", "phone"),
        ("Order", "store_id"),
        ("Order", "guide_id"),
    ],
)
def test_the_spec_says_nullable_where_answers_carry_null(schema, field):
    assert SPEC["components"]["schemas"][schema]["properties"][field].get("nullable") is True


def test_order_basis_is_never_null_as_sent_and_the_server_agrees(api):
    sent = SPEC["components"]["schemas"]["CommissionRuleIn"]["properties"]["order_basis"]
    assert not sent.get("nullable") and None not in sent["enum"]
    body = {"name": "首单提成", "kind": "order_percent", "rate_bp": 300, "order_basis": None}
    refused = assert_error_shape(api.post(HQ, "/api/v1/commissions/rules", json=body), 422)
    assert set(refused["errors"]) == {"order_basis"}
    created = api.post(HQ, "/api/v1/commissions/rules", json={**body, "order_basis": "first"})
    assert created.status_code == 201, created.get_json()


def test_every_operation_documents_its_errors_and_no_catch_all():
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            codes = set(operation["responses"])
            assert "default" not in codes, (method, path)
            assert {"401", "422", "503"} <= codes, (method, path)
            security = operation.get("security")
            if security is None or any("bearerAuth" in s for s in security):
                assert "403" in codes, (method, path)  # a staff login's role may not
            if "{" in path:
                assert "404" in codes, (method, path)
            if "requestBody" in operation:
                assert {"400", "413"} <= codes, (method, path)
    error = SPEC["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "status", "message", "errors"}
