"""One JSON error shape, no 500 from client input, health probes, request ids."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guideapp import create_app
from tests.conftest import HQ, make_config


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


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_client_input_causes_a_500(api, client, data):
    """Random bodies against every documented write, built from the spec's own fields."""
    spec = client.get("/openapi.json").get_json()
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"post", "patch"} and path != "/api/v1/auth/logout"  # keeps the login
    ]
    path, method, op = data.draw(st.sampled_from(operations))
    fields = list(_body_fields(spec, op))
    body = data.draw(
        st.dictionaries(st.sampled_from(fields + ["junk"]), json_values, max_size=6)
        if fields
        else json_values
    )
    url = path.replace("{", "").replace("}", "")  # ids that exist nowhere: 404 is fine
    response = api.client.open(
        url,
        method=method.upper(),
        data=json.dumps(body),
        content_type="application/json",
        headers=api.headers(HQ),
    )
    assert response.status_code < 500, (path, body, response.get_json())
    if response.status_code >= 400:
        assert {"code", "message"} <= set(response.get_json())


def _body_fields(spec, op):
    content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = content.get("schema", {}).get("$ref")
    if not ref:
        return []
    schema = spec["components"]["schemas"][ref.split("/")[-1]]
    return schema.get("properties", {}).keys()


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
