"""One JSON error shape, no 500 from client input, health probes, request ids."""

import json
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guideapp import create_app
from tests.conftest import GUIDE, HQ, make_config


def test_unknown_route_and_wrong_method_use_the_error_shape(api):
    missing = api.get(HQ, "/api/v1/nothing-here")
    assert missing.status_code == 404 and set(missing.get_json()) >= {"code", "message", "status"}
    wrong = api.client.delete("/api/v1/auth/login")
    assert wrong.status_code == 405 and wrong.get_json()["code"] == 405


def test_malformed_json_is_a_4xx_with_a_message(client):
    response = client.post("/api/v1/auth/login", data="{not json", content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.get_json()["message"]


def test_wrong_types_are_named_per_field(client):
    response = client.post("/api/v1/auth/login", json={"phone": 13800000001})
    body = response.get_json()
    assert response.status_code == 422
    assert set(body["errors"]) == {"phone", "password"}


# Hostile values the walk in test_hostile_input.py sends everywhere, mixed into random ones.
HOSTILE = [
    "\x00",
    "a\x00b",
    "\ud800",
    "0001-01-01T00:00:01+00:01",
    "9999-12-31T23:59:59-01:00",
    "0000-01",
    "x" * 3000,
    10**30,
    -(10**30),
    1e308,
]
texts = st.text(st.characters(exclude_categories=()), max_size=30)  # surrogates included
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts | st.sampled_from(HOSTILE),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
query_values = st.text(max_size=30) | st.sampled_from(
    ["%00", "a%00b", "%ED%A0%80", "0001-01-01T00:00:01+00:01", "0000-01", "1" + "0" * 30, "-1"]
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_client_input_causes_a_500(api, client, data):
    """Random bodies and query strings against every documented operation, built from the
    spec's own fields and parameters, as HQ, a guide or anonymous."""
    spec = client.get("/openapi.json").get_json()
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
        and path != "/api/v1/auth/logout"  # keeps the login
    ]
    path, method, op = data.draw(st.sampled_from(operations))
    phone = data.draw(st.sampled_from([HQ, GUIDE, None]))
    fields = list(_body_fields(spec, op))
    body = data.draw(
        st.dictionaries(
            st.sampled_from([*fields, "junk", "\ud800", "a\x00"]), json_values, max_size=6
        )
        if fields
        else json_values
    )
    params = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
    query = data.draw(st.dictionaries(st.sampled_from(params + ["junk"]), query_values, max_size=3))
    url = path.replace("{", "").replace("}", "")  # ids that exist nowhere: 404 is fine
    if query:
        url += "?" + "&".join(f"{k}={quote(v, safe='%')}" for k, v in query.items())
    response = api.client.open(
        url,
        method=method.upper(),
        data=json.dumps(body) if method != "get" else None,
        content_type="application/json",
        headers=api.headers(phone) if phone else {},
    )
    assert response.status_code < 500, (method, path, query, body, response.get_json())
    if response.status_code >= 400:
        error = response.get_json()
        if _documented_schema(op, response.status_code).endswith("/Fail"):
            # WeChat Pay's callbacks answer in WeChat's own shape (docs/wechat.md)
            assert error["code"] == "FAIL" and error["message"], error
        else:
            assert {"code", "message", "status"} <= set(error)
            assert error["code"] == response.status_code


def _documented_schema(op: dict, status: int) -> str:
    """The $ref of the JSON schema the operation documents for this status ('' if none)."""
    answer = op.get("responses", {}).get(str(status), {})
    return answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")


def _body_fields(spec, op):
    content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = content.get("schema", {}).get("$ref")
    if not ref:
        return []
    schema = spec["components"]["schemas"][ref.split("/")[-1]]
    return schema.get("properties", {}).keys()


def test_a_constraint_refused_at_commit_is_the_same_409(app, client):
    """IntegrityError has one mapping (errors.integrity_conflict): raised in a view, or at
    the request's commit in web.py, as here (two twins flushed only by the commit)."""
    from guideapp.idempotency.models import IdempotentRequest
    from guideapp.web import db_session

    @app.post("/test-only/twins")
    def twins():
        for _ in range(2):
            db_session().add(
                IdempotentRequest(owner="t", key="same", method="POST", path="/", request_hash="h")
            )
        return {"created": 2}

    response = client.post("/test-only/twins")
    assert response.status_code == 409 and response.mimetype == "application/json"
    assert response.get_json() == {
        "code": 409,
        "status": "Conflict",
        "message": "This conflicts with an existing record.",
        "errors": {},
    }


def test_a_database_lost_at_the_commit_is_a_503_and_a_retry_records_once(app, api, session):
    """PostgreSQL restarted as a request commits (make faults, postgres_restart): the
    commit's OperationalError answers the one 503, never a 500, and the request's writes are
    gone, so the client's retry records the order once."""
    from sqlalchemy import event, func, select
    from sqlalchemy.exc import OperationalError

    from guideapp.members.models import Order

    maker = app.extensions["guideapp"]["sessionmaker"]
    lost = []

    def connection_lost_once(_session):
        if not lost:
            lost.append(True)
            raise OperationalError("COMMIT", None, Exception("server closed the connection"))

    api.headers(HQ)  # logged in before the database goes
    event.listen(maker, "before_commit", connection_lost_once)
    order = {
        "channel": "pos",
        "order_no": "LOST-AT-COMMIT-1",
        "amount_fen": 12_300,
        "ordered_at": "2026-01-05T10:00:00+08:00",
        "phone": "13912349876",
        "store_code": "SH001",
    }
    try:
        failed = api.post(HQ, "/api/v1/orders", json=order)
        assert failed.status_code == 503, failed.get_json()
        assert failed.get_json() == {
            "code": 503,
            "status": "Service Unavailable",
            "message": "The database is busy or unreachable; retry shortly.",
            "errors": {},
        }
        count = select(func.count()).select_from(Order).where(Order.order_no == order["order_no"])
        assert session.scalar(count) == 0
        retried = api.post(HQ, "/api/v1/orders", json=order)
        assert retried.status_code == 200 and retried.get_json()["created"] is True
        assert session.scalar(count) == 1
    finally:
        event.remove(maker, "before_commit", connection_lost_once)


def test_health_probes(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["database"] == "reachable"


def test_readyz_is_503_on_an_unmigrated_database(tmp_path):
    app = create_app(make_config(type("D", (), {"url": f"sqlite:///{tmp_path}/empty.db"})()))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json()["migrations"]["current"] == []


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc"}).headers["X-Request-ID"] == "abc"
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32
