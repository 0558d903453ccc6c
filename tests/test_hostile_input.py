"""Hostile input never reaches a 500. The walk sends every kind of hostile value through every
route of the spec and the URL map (body fields, raw bodies, query, path, headers, uploads) as
HQ, as a guide and anonymous, and checks the answer is a 4xx in the one error shape (and, for
text no column may hold, the guard's own answer); the tests after it pin each defect found."""

from __future__ import annotations

import base64
import io
import json
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import jwt
import pytest
from sqlalchemy import func, select

from guideapp import create_app, untrusted
from guideapp.members.models import Member, MemberNote, Order
from guideapp.tasks.models import SopRule
from tests.conftest import GUIDE, HQ, make_config
from tests.factories import member_of, staff_by_phone

ACTORS = {"hq": HQ, "guide": GUIDE, "anonymous": None}
NUL = "a\x00b"
SURROGATE = "x\ud800"
GUARDED = {"nul": untrusted.NUL_MESSAGE, "surrogate": untrusted.SURROGATE_MESSAGE}
# Values for a string field (sent in JSON) or a query parameter (percent-encoded).
STRINGS = {
    "nul": NUL,
    "surrogate": SURROGATE,
    "overflowing_time": "0001-01-01T00:00:01+00:01",
    "overflowing_late_time": "9999-12-31T23:59:59-01:00",
    "month_zero": "0000-01",
    "month_last": "9999-12",
    "long": "x" * 5000,
}
# Values of other JSON types for a body field.
OTHERS = {
    "huge_int": 10**30,
    "huge_negative_int": -(10**30),
    "huge_float": 1e308,
    "nested_nul": {"k": [NUL]},
    "nested_surrogate": [{"k": SURROGATE}],
    "nul_key": {"\x00": 1},
    "deep_list": json.loads("[" * 200 + "]" * 200),
}
# Whole raw bodies.
RAW_BODIES = {
    "deep_list": b"[" * 10_000 + b"]" * 10_000,
    "deep_object": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "invalid_utf8": b'{"a": "\xff\xfe"}',
    "nul_string": json.dumps(NUL).encode(),
    "surrogate_key": b'{"\\udc00": 1}',
    "not_json": b"{not json",
}


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


FORGED_CURSORS = {
    "huge_floats": _b64("[1e30,1e30]"),
    "nulls": _b64("[null,null]"),
    "null": _b64("[null]"),
    "huge_int": _b64("[100000000000000000000000000000]"),
    "float": _b64("[1e30]"),
    "garbage": "!!!not-base64",
    "bad_padding": "A",
    "not_utf8": base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
    "deep": _b64("[" * 1500 + "]" * 1500),
    "nul": _b64('["\\u0000"]'),
    "surrogate": _b64('["\\ud800"]'),
    "bad_time": _b64('[{"t":"0001-01-01T00:00:00+00:01"},"x"]'),
    "time_not_string": _b64('[{"t":5},"x"]'),
    "object": _b64('{"a":1}'),
    "bools": _b64("[true,true]"),
    "lists": _b64("[[],[]]"),
    "sync_page_huge": _b64('{"c":100000000000000000000000,"t":0,"a":null}'),
    "sync_page_nul": _b64('{"c":1,"t":0,"a":"\\u0000"}'),
}
# Raw (already percent-encoded) values for a path segment or query value.
RAW_URL_VALUES = {
    "nul": "a%00b",
    "invalid_utf8": "%ED%A0%80",  # a UTF-8-encoded surrogate: not valid UTF-8
    "long": "x" * 3000,
}
HEADERS = ["Idempotency-Key", "X-Request-ID", "If-Match", "If-None-Match", "Authorization"]


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").get_json()


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                if path != "/api/v1/auth/logout":  # keeps the login of the actor walking
                    yield path, method, op


def _fill(path: str, value: str = "made-up-id") -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def _schema(spec, ref_or_schema):
    ref = ref_or_schema.get("$ref")
    return spec["components"]["schemas"][ref.split("/")[-1]] if ref else ref_or_schema


def _body_fields(spec, op) -> list[str]:
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if not content:
        return []
    return list(_schema(spec, content["schema"]).get("properties", {}))


def _query_params(op) -> list[dict]:
    return [p for p in op.get("parameters", []) if p.get("in") == "query"]


def _required_query(op) -> str:
    """The required query parameters with a plausible value (so a body gets parsed)."""
    return "&".join(f"{p['name']}=1" for p in _query_params(op) if p.get("required"))


def _public(op) -> bool:
    return op.get("security") == []


def _headers(api, phone, **extra):
    return api.headers(phone, **extra) if phone else extra


def _send(api, phone, method, url, **kwargs):
    headers = _headers(api, phone, **kwargs.pop("headers", {}))
    if method != "get" and "data" not in kwargs:
        kwargs["json"] = kwargs.get("json", {})
    if "json" in kwargs:  # ASCII JSON: a lone surrogate travels escaped, as "\ud800"
        kwargs["data"] = json.dumps(kwargs.pop("json"))
        kwargs["content_type"] = "application/json"
    return api.client.open(url, method=method.upper(), headers=headers, **kwargs)


def _shape_problem(response) -> str | None:
    """Why the response breaks the rules (a 5xx, or an error outside the one shape)."""
    if response.status_code >= 500:
        return "server error"
    if _landing_page_404(response):
        return None
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        if response.request.path.startswith("/api/v1/wechat/pay/notify/"):
            # WeChat Pay reads a refusal as {"code": "FAIL", "message"} (docs/wechat-pay.md)
            fail = isinstance(body, dict) and body.get("code") == "FAIL"
            return None if fail and isinstance(body.get("message"), str) else "not FAIL"
        if not (
            isinstance(body, dict)
            and body.get("code") == response.status_code
            and isinstance(body.get("message"), str)
            and isinstance(body.get("status"), str)
        ):
            return "not the error shape"
    return None


def _landing_page_404(response) -> bool:
    """The page a QR code opens is for people, outside the API: an unknown code is its own
    HTML page saying so (tests/test_landing.py), not the JSON error shape."""
    return (
        response.status_code == 404
        and response.request.path.startswith("/s/")
        and response.mimetype == "text/html"
        and "无法识别的二维码" in response.get_data(as_text=True)
    )


def _check(response, failures: list, what, *, expect=None, message=None) -> None:
    """No 5xx, the one error shape; `expect`: the statuses allowed, `message`: a text the
    answer must carry (the guard's own words)."""
    problem = _shape_problem(response)
    if problem is None and expect is not None and response.status_code not in expect:
        problem = f"expected {sorted(expect)}"
    if problem is None and message and not _says(response, message):
        problem = f"expected {message!r}"
    if problem:
        failures.append((*what, response.status_code, problem, response.get_data(True)[:160]))


def _report(failures) -> str:
    return f"{len(failures)} failures:\n" + "\n".join(map(repr, failures))


def _messages(errors) -> list[str]:
    """Every message inside an `errors` object, however it nests."""
    if isinstance(errors, dict):
        return [m for value in errors.values() for m in _messages(value)]
    return (
        [m for value in errors for m in _messages(value)] if isinstance(errors, list) else [errors]
    )


def _names(errors) -> set:
    """Every field name inside an `errors` object, however it nests."""
    if not isinstance(errors, dict):
        return set()
    return set(errors) | {n for value in errors.values() for n in _names(value)}


def _says(response, text: str) -> bool:
    """The error's message or one of its field messages contains `text`."""
    body = response.get_json(silent=True) or {}
    return any(text in m for m in [body.get("message", ""), *_messages(body.get("errors", {}))])


def _guarded(kind: str) -> str | None:
    return GUARDED.get(kind)


def _nested_kind(kind: str) -> str | None:
    return {"nested_nul": "nul", "nul_key": "nul", "nested_surrogate": "surrogate"}.get(
        kind, kind if kind in GUARDED else None
    )


# -- the walk ---------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", ACTORS)
def test_every_body_field_given_every_hostile_value(api, spec, actor):
    """Each documented body field of every JSON write, alone, given each hostile value (HQ:
    every field; guide and anonymous: the first). Text no column may hold is always the
    guard's 422 (before any schema, so before "missing field" answers), once logged in or on
    a public route."""
    phone = ACTORS[actor]
    failures: list = []
    for path, method, op in _operations(spec):
        fields = _body_fields(spec, op)
        query = _required_query(op)
        url = _fill(path) + (f"?{query}" if query else "")
        for field in fields if actor == "hq" else fields[:1]:
            for kind, value in {**STRINGS, **OTHERS}.items():
                response = _send(api, phone, method, url, json={field: value})
                guarded = _nested_kind(kind)
                reads_body = phone is not None or _public(op)
                _check(
                    response,
                    failures,
                    (method, path, field, kind),
                    expect={422} if guarded and reads_body else None,
                    message=_guarded(guarded) if guarded and reads_body else None,
                )
    assert not failures, _report(failures)


@pytest.mark.parametrize("actor", ACTORS)
def test_every_write_given_every_hostile_raw_body(api, spec, actor):
    phone = ACTORS[actor]
    failures: list = []
    for path, method, op in _operations(spec):
        if method == "get":
            continue
        query = _required_query(op)
        url = _fill(path) + (f"?{query}" if query else "")
        json_body = "application/json" in op.get("requestBody", {}).get("content", {})
        for kind, raw in RAW_BODIES.items():
            response = _send(api, phone, method, url, data=raw, content_type="application/json")
            reads_body = json_body and (phone is not None or _public(op))
            expect = message = None
            if reads_body and kind.startswith("deep"):
                expect, message = {400}, "nested at most"
            elif reads_body and kind in {"nul_string", "surrogate_key"}:
                expect = {422}
                message = _guarded("nul" if kind == "nul_string" else "surrogate")
            _check(response, failures, (method, path, kind), expect=expect, message=message)
    assert not failures, _report(failures)


@pytest.mark.parametrize("actor", ACTORS)
def test_every_query_parameter_given_every_hostile_value(api, spec, actor):
    phone = ACTORS[actor]
    failures: list = []
    values = {k: quote(v, errors="surrogatepass") for k, v in STRINGS.items()}
    values |= {f"raw_{k}": v for k, v in RAW_URL_VALUES.items()}
    values |= {"huge_int": "1" + "0" * 30, "negative": "-1", "float": "1e309", "empty": ""}
    for path, method, op in _operations(spec):
        for param in [p["name"] for p in _query_params(op)] + ["junk"]:
            kinds = dict(values)
            if param in {"cursor", "page", "migration"} and actor != "guide":  # guide: below
                kinds |= {f"forged_{k}": v for k, v in FORGED_CURSORS.items()}
            for kind, value in kinds.items():
                response = _send(api, phone, method, f"{_fill(path)}?{param}={value}")
                guarded = {"nul": "nul", "raw_nul": "nul"}.get(kind)  # surrogates can't travel
                _check(
                    response,
                    failures,
                    (method, path, param, kind),
                    expect={422} if guarded else None,
                    message=GUARDED[guarded] if guarded else None,
                )
    assert not failures, _report(failures)


@pytest.mark.parametrize("actor", ACTORS)
def test_every_path_parameter_given_every_hostile_value(api, client, spec, actor):
    phone = ACTORS[actor]
    failures: list = []
    paths = [(p, m) for p, m, _ in _operations(spec) if "{" in p]
    for rule in client.application.url_map.iter_rules():  # the routes outside the API too
        if not rule.rule.startswith("/api/") and rule.arguments:
            paths.append((re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), "get"))
    assert len(paths) > 40
    for path, method in paths:
        for kind, value in RAW_URL_VALUES.items():
            response = _send(api, phone, method, _fill(path, value))
            _check(
                response,
                failures,
                (method, path, kind),
                expect={422} if kind == "nul" else None,
                message=GUARDED["nul"] if kind == "nul" else None,
            )
    assert not failures, _report(failures)


@pytest.mark.parametrize("actor", ACTORS)
def test_every_route_given_hostile_headers(api, spec, actor):
    phone = ACTORS[actor]
    failures: list = []
    for path, method, _op in _operations(spec):
        for header in HEADERS:
            if header == "Authorization" and phone is None:
                headers = {header: f"Bearer {NUL}"}
            elif header == "Authorization":
                continue  # replacing the login: the anonymous walk covers it
            else:
                headers = {header: NUL}
            response = _send(api, phone, method, _fill(path), headers=headers)
            _check(response, failures, (method, path, header), expect={422})
    assert not failures, _report(failures)


@pytest.mark.parametrize("actor", ACTORS)
def test_every_upload_given_hostile_file_names(api, spec, actor):
    phone = ACTORS[actor]
    failures: list = []
    uploads = [
        (path, method, op)
        for path, method, op in _operations(spec)
        if "multipart/form-data" in op.get("requestBody", {}).get("content", {})
    ]
    assert len(uploads) == 3
    for path, method, _op in uploads:
        for kind, filename in {"nul": "a\x00b.csv", "long": "x" * 5000 + ".csv"}.items():
            response = _send(
                api,
                phone,
                method,
                _fill(path, "members"),
                data={"file": (io.BytesIO(b"phone,name\n13900000000,a\n"), filename)},
                content_type="multipart/form-data",
            )
            guarded = kind == "nul" and phone is not None
            _check(
                response,
                failures,
                (method, path, kind),
                expect={422} if guarded else None,
                message=GUARDED["nul"] if guarded else None,
            )
    assert not failures, _report(failures)


def test_the_walk_covers_every_api_route(client, spec):
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in client.application.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    walked = {(path, method) for path, method, _ in _operations(spec)}
    assert routes - walked == {("/api/v1/auth/logout", "post")}


# -- NUL and surrogates, door by door --------------------------------------------------------


def test_nul_in_login_phone_is_a_422_and_counts_no_failure(client):
    response = client.post("/api/v1/auth/login", json={"phone": "1380000\x000001", "password": "x"})
    assert response.status_code == 422
    assert response.get_json()["code"] == 422 and "NUL" in response.get_data(as_text=True)


def test_nul_and_surrogate_in_public_scan_code(client):
    for code in ("stride\x00-lbs", "stride-\ud800"):
        response = client.post(
            "/api/v1/scans", data=json.dumps({"code": code}), content_type="application/json"
        )
        assert response.status_code == 422, response.get_data(as_text=True)
        assert "code" in response.get_data(as_text=True)


def test_nul_inside_a_valid_body_writes_nothing(api, session):
    member = member_of(session, GUIDE)
    before = session.scalar(select(func.count()).select_from(MemberNote))
    response = api.post(GUIDE, f"/api/v1/members/{member.id}/notes", json={"body": "hi\x00there"})
    assert response.status_code == 422 and "body" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(MemberNote)) == before


def test_lone_surrogate_key_and_value_are_refused_with_an_encodable_answer(api, session):
    member = member_of(session, GUIDE)
    for raw in (b'{"body": "\\ud800"}', b'{"\\udfff": "x"}', b'{"body": "ok \\udc00 no"}'):
        response = api.client.post(
            f"/api/v1/members/{member.id}/notes",
            data=raw,
            content_type="application/json",
            headers=api.headers(GUIDE),
        )
        assert response.status_code == 422
        assert untrusted.SURROGATE_MESSAGE in _messages(response.get_json()["errors"])


def test_a_surrogate_pair_is_text_and_is_kept(api, session):
    member = member_of(session, GUIDE)
    response = api.client.post(
        f"/api/v1/members/{member.id}/notes",
        data=b'{"body": "\\ud83d\\ude00 ok"}',  # an emoji, escaped as clients with ASCII JSON do
        content_type="application/json",
        headers=api.headers(GUIDE),
    )
    assert response.status_code == 201 and response.get_json()["body"] == "\U0001f600 ok"


def test_nul_in_path_query_and_idempotency_key(api, session):
    member = member_of(session, GUIDE)
    card = api.get(GUIDE, f"/api/v1/members/{member.id}%00/card")
    assert card.status_code == 422 and "member_id" in card.get_json()["errors"]
    search = api.get(GUIDE, "/api/v1/members?q=a%00b")
    assert search.status_code == 422 and "q" in search.get_json()["errors"]
    keyed = api.post(
        GUIDE,
        f"/api/v1/members/{member.id}/notes",
        json={"body": "hello"},
        headers={"Idempotency-Key": "k\x00"},
    )
    assert keyed.status_code == 422 and "Idempotency-Key" in keyed.get_json()["errors"]


def test_nul_in_an_upload_file_name(api):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    response = api.client.post(
        "/api/v1/uploads",
        headers=api.headers(HQ),
        data={"file": (io.BytesIO(png), "poster\x00.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and "file" in _names(response.get_json()["errors"])


def test_a_request_id_that_is_not_a_plain_token_is_replaced(client):
    echoed = client.get("/healthz", headers={"X-Request-ID": "abc-1.2:3"})
    assert echoed.headers["X-Request-ID"] == "abc-1.2:3"
    replaced = client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert len(replaced.headers["X-Request-ID"]) == 32


# -- access tokens ----------------------------------------------------------------------------


def _token(app, **claims):
    base = {"sub": "s", "sid": "s", "tid": "t", "typ": "access", "exp": int(time.time()) + 60}
    return jwt.encode({**base, **claims}, app.config["SECRET_KEY"], algorithm="HS256")


def test_signed_tokens_with_malformed_claims_are_401(app, client, session):
    staff = staff_by_phone(session, GUIDE)
    later = int(time.time()) + 600
    for claims in (
        {"exp": str(later)},  # PyJWT accepts a numeric string; comparing it raised
        {"exp": True},
        {"sub": f"{staff.id}\x00"},
        {"sub": "\ud800"},
        {"sub": 12},
        {"sub": ["a"]},
        {"sid": {"a": 1}},
        {"sid": "x" * 10_000},
        {"tid": 5},
    ):
        response = client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {_token(app, **claims)}"}
        )
        assert response.status_code == 401, (claims, response.get_data(as_text=True))
        assert response.get_json()["code"] == 401


# -- depth ------------------------------------------------------------------------------------


@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a":', "}")])
def test_json_nested_10000_deep_is_a_400_even_on_the_public_scan(client, opening, closing):
    raw = opening * 10_000 + "1" * (opening != "[") + closing * 10_000
    response = client.post("/api/v1/scans", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert "nested at most 32" in response.get_data(as_text=True)


def test_json_depth_limit_is_exact():
    assert untrusted.loads("[" * 32 + "]" * 32) is not None
    with pytest.raises(untrusted.TooDeep):
        untrusted.loads("[" * 33 + "]" * 33)
    with pytest.raises(untrusted.TooDeep):
        untrusted.loads('{"a":' * 33 + "1" + "}" * 33)
    with pytest.raises(untrusted.UnsafeText) as found:
        untrusted.loads('{"a": [1, {"b": "\\u0000"}]}')
    assert found.value.path == ("a", 1, "b")
    assert untrusted.loads('"\\\\u0000"') == "\\u0000"  # an escaped backslash: plain text


def test_json_depth_limit_is_configurable(database, connection):
    app = create_app(make_config(database, MAX_JSON_DEPTH=3), bind=connection)
    deep = app.test_client().post(
        "/api/v1/scans", json={"code": "stride-lbs", "x": [[[1]]]}, headers={}
    )
    assert deep.status_code == 400 and "nested at most 3" in deep.get_json()["message"] + str(
        deep.get_json().get("errors")
    )


# -- times and months -------------------------------------------------------------------------


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:01+00:01", "9999-12-31T23:59:59-01:00"])
def test_a_time_that_overflows_in_utc_is_a_422_naming_the_field(api, session, moment):
    member = member_of(session, GUIDE)
    response = api.post(
        GUIDE, f"/api/v1/members/{member.id}/notes", json={"body": "hi", "noted_at": moment}
    )
    assert response.status_code == 422 and "noted_at" in response.get_data(as_text=True)


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "1899-12"])
def test_settlement_and_reports_refuse_months_out_of_range(api, month):
    closed = api.post(HQ, "/api/v1/commissions/settlements", json={"month": month})
    assert closed.status_code == 422 and "month" in closed.get_data(as_text=True)
    for url in ("/api/v1/commissions/me", "/api/v1/leaderboards", "/api/v1/commissions/entries"):
        response = api.get(HQ if "entries" in url else GUIDE, f"{url}?month={month}")
        assert response.status_code == 422, (url, response.get_json())


# -- forged cursors ---------------------------------------------------------------------------

LISTS = [
    "/api/v1/regions",  # (code, id)
    "/api/v1/stores",
    "/api/v1/materials",  # (created_at, id) descending
    "/api/v1/members",  # branches by id
    "/api/v1/sync/rejections",  # integer id
    "/api/v1/tags",
    "/api/v1/commissions/me",
]


@pytest.mark.parametrize("url", LISTS)
def test_forged_list_cursors_are_422(api, url):
    for kind, cursor in FORGED_CURSORS.items():
        response = api.get(HQ if "commissions" not in url else GUIDE, f"{url}?cursor={cursor}")
        assert response.status_code == 422, (kind, response.get_data(as_text=True))
        assert "cursor" in response.get_data(as_text=True)


def test_a_real_cursor_still_pages(api):
    first = api.get(HQ, "/api/v1/materials?limit=1").get_json()
    second = api.get(HQ, f"/api/v1/materials?limit=1&cursor={first['next_cursor']}")
    assert second.status_code == 200 and second.get_json()["items"] != first["items"]
    stores = api.get(HQ, "/api/v1/stores?limit=2").get_json()
    assert api.get(HQ, f"/api/v1/stores?limit=2&cursor={stores['next_cursor']}").status_code == 200


def test_forged_sync_page_tokens_and_migrations_are_422(api):
    for kind, token in FORGED_CURSORS.items():
        response = api.get(GUIDE, f"/api/v1/sync/pull?last_pulled_at=null&page={token}")
        assert response.status_code == 422, (kind, response.get_data(as_text=True))
    for migration in (
        "[" * 1900 + "]" * 1900,
        '{"tables": [{"a": 1}]}',
        '{"tables": 5}',
        '{"columns": [{"table": ["x"]}]}',
        '{"from": 1, "tables": ["\\u0000"]}',
    ):
        response = api.get(
            GUIDE, f"/api/v1/sync/pull?last_pulled_at=null&migration={quote(migration, safe='[]')}"
        )
        assert response.status_code == 422, (migration[:40], response.get_data(as_text=True))


# -- sizes ------------------------------------------------------------------------------------


def _order(**extra):
    return {
        "channel": "pos",
        "order_no": f"H-{time.monotonic_ns()}",
        "amount_fen": 100,
        "ordered_at": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(),
        "phone": "13912345678",
        **extra,
    }


def test_a_body_over_the_limit_is_a_413_in_the_error_shape_and_stores_nothing(api, session):
    before = session.scalar(select(func.count()).select_from(Order))
    big = [{"sku": "x" * 10_000} for _ in range(500)]  # 5 MB of items
    response = api.post(HQ, "/api/v1/orders", json=_order(items=big))
    assert response.status_code == 413
    body = response.get_json()
    assert body["code"] == 413 and body["status"] == "Request Entity Too Large"
    assert str(4 * 1024 * 1024) in body["message"]
    assert session.scalar(select(func.count()).select_from(Order)) == before


CHUNKED = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}  # as gunicorn


def test_a_chunked_body_over_the_limit_is_a_413_not_cut_short(client):
    """werkzeug cuts a body without Content-Length at the limit without a word: a JSON body
    cut there would be a 400 (invalid JSON), a cut list silently shorter."""
    big = json.dumps({"code": "x" * (5 << 20)}).encode()
    response = client.post(
        "/api/v1/scans",
        input_stream=io.BytesIO(big),
        content_type="application/json",
        environ_overrides=CHUNKED,
    )
    assert response.status_code == 413 and response.get_json()["code"] == 413
    small = client.post(
        "/api/v1/scans",
        input_stream=io.BytesIO(b'{"code": "stride-lbs"}'),
        content_type="application/json",
        environ_overrides=CHUNKED,
    )
    assert small.status_code < 400, small.get_json()


def test_the_body_limit_is_configurable_and_uploads_have_their_own(database, connection):
    app = create_app(
        make_config(database, MAX_CONTENT_LENGTH=1000, MAX_UPLOAD_BYTES=5000), bind=connection
    )
    client = app.test_client()
    response = client.post("/api/v1/scans", json={"code": "x" * 2000})
    assert response.status_code == 413 and response.get_json()["code"] == 413
    token = client.post(
        "/api/v1/auth/login", json={"phone": HQ, "password": "demo-pass-2026"}
    ).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    def upload(size):
        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * size
        return client.post(
            "/api/v1/uploads",
            headers=headers,
            data={"file": (io.BytesIO(png), "p.png")},
            content_type="multipart/form-data",
        )

    assert upload(3000).status_code == 201  # over the body limit, under the upload limit
    too_big = upload(6000)
    assert too_big.status_code == 413 and "5000" in too_big.get_json()["message"]


def test_order_items_are_capped_by_size(api, session):
    member_count = session.scalar(select(func.count()).select_from(Member))
    items = [{"sku": "x" * 1000} for _ in range(70)]  # 70 KB: under the body limit
    response = api.post(HQ, "/api/v1/orders", json=_order(items=items))
    assert response.status_code == 422 and "items" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Member)) == member_count
    fine = api.post(HQ, "/api/v1/orders", json=_order(items=[{"sku": "A1", "qty": 2}]))
    assert fine.status_code in (200, 201), fine.get_json()


def test_sop_rule_params_and_questionnaire_answers_are_capped(api, session):
    rules = session.scalar(select(func.count()).select_from(SopRule))
    rule = {
        "name": "silent",
        "trigger": "silent",
        "params": {"silent_days": 60, "padding": "x" * 5000},
        "steps": [{"days": 1, "title": "call"}],
    }
    response = api.post(HQ, "/api/v1/sop-rules", json=rule)
    assert response.status_code == 422 and "params" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(SopRule)) == rules
    member = member_of(session, GUIDE)
    answers = api.post(
        GUIDE,
        f"/api/v1/members/{member.id}/questionnaire",
        json={"questionnaire": "q", "answers": {"a": "x" * 5000}},
    )
    assert answers.status_code == 422 and "answers" in answers.get_data(as_text=True)


# -- URLs and the one error shape for the app's own HTTP errors ------------------------------


def test_a_url_over_the_limit_is_a_json_414(api):
    response = api.get(GUIDE, "/api/v1/members?q=" + "x" * 5000)
    assert response.status_code == 414
    assert response.get_json()["code"] == 414 and "4096" in response.get_json()["message"]
    assert api.client.get("/nothing/" + "x" * 5000).status_code == 414


def test_every_http_error_of_the_app_is_json(api, client):
    cases = [
        client.get("/not-an-api-path"),  # 404 outside /api
        client.get("/api/v1/nothing"),  # 404
        client.put("/api/v1/auth/login"),  # 405
        client.post("/api/v1/auth/login", data="{bad", content_type="application/json"),  # 400
        client.post("/api/v1/scans", data=b"x" * (5 << 20), content_type="application/json"),
        client.get("/api/v1/me?x=" + "y" * 5000),  # 414
    ]
    assert [r.status_code for r in cases] == [404, 404, 405, 400, 413, 414]
    for response in cases:
        assert response.mimetype == "application/json"
        assert _shape_problem(response) is None, response.get_data(as_text=True)
