"""Login, refresh, logout, /me, leavers and login throttling through the API."""

from tests.conftest import GUIDE, HQ, MANAGER


def test_guide_logs_in_and_sees_their_store(api):
    me = api.get(GUIDE, "/api/v1/me")
    assert me.status_code == 200
    body = me.get_json()
    assert body["staff"]["role"] == "guide"
    assert body["store"]["code"] == "SH001"
    assert body["tenant"]["timezone"] == "Asia/Shanghai"
    assert "password" not in body["staff"] and "password_hash" not in body["staff"]


def test_phone_is_normalised_at_login(api):
    assert (
        api.client.post(
            "/api/v1/auth/login", json={"phone": "+86 138-0000-0003", "password": "demo-pass-2026"}
        ).status_code
        == 200
    )


def test_wrong_password_and_unknown_phone_look_the_same(client):
    wrong = client.post("/api/v1/auth/login", json={"phone": GUIDE, "password": "nope"})
    unknown = client.post("/api/v1/auth/login", json={"phone": "13999999999", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json()["message"] == unknown.get_json()["message"]


def test_requests_without_or_with_bad_tokens_are_401(client):
    assert client.get("/api/v1/me").status_code == 401
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert bad.status_code == 401
    assert bad.get_json()["code"] == 401 and bad.get_json()["message"]


def test_refresh_rotates_and_old_refresh_token_dies(api):
    tokens = api.login(GUIDE)
    first = api.client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    again = api.client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401
    new_access = first.get_json()["access_token"]
    me = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {new_access}"})
    assert me.status_code == 200


def test_logout_kills_access_and_refresh_tokens_at_once(api):
    tokens = api.login(GUIDE)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert api.client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert api.client.get("/api/v1/me", headers=headers).status_code == 401
    refresh = api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 401


def test_tokens_of_a_guide_who_left_stop_working_at_once(api):
    tokens = api.login(GUIDE)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    guide_id = api.client.get("/api/v1/me", headers=headers).get_json()["staff"]["id"]
    assert api.post(MANAGER, f"/api/v1/staff/{guide_id}/leave").status_code == 200
    assert api.client.get("/api/v1/me", headers=headers).status_code == 401
    assert (
        api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        ).status_code
        == 401
    )
    relogin = api.client.post(
        "/api/v1/auth/login", json={"phone": GUIDE, "password": "demo-pass-2026"}
    )
    assert relogin.status_code == 401


def test_login_is_throttled_per_phone(client, app):
    limit = app.config["LOGIN_MAX_FAILURES_PER_PHONE"]
    for _ in range(limit):
        assert (
            client.post("/api/v1/auth/login", json={"phone": HQ, "password": "wrong"}).status_code
            == 401
        )
    blocked = client.post("/api/v1/auth/login", json={"phone": HQ, "password": "demo-pass-2026"})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    other = client.post("/api/v1/auth/login", json={"phone": GUIDE, "password": "demo-pass-2026"})
    assert other.status_code == 200


def test_login_is_throttled_per_address(client, app):
    app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] = 3
    for i in range(3):
        client.post(
            "/api/v1/auth/login",
            json={"phone": f"1390000000{i}", "password": "x"},
            environ_base={"REMOTE_ADDR": "10.9.9.9"},
        )
    blocked = client.post(
        "/api/v1/auth/login",
        json={"phone": GUIDE, "password": "demo-pass-2026"},
        environ_base={"REMOTE_ADDR": "10.9.9.9"},
    )
    assert blocked.status_code == 429
    elsewhere = client.post(
        "/api/v1/auth/login",
        json={"phone": GUIDE, "password": "demo-pass-2026"},
        environ_base={"REMOTE_ADDR": "10.9.9.10"},
    )
    assert elsewhere.status_code == 200


def test_expired_access_token_is_refused(api, app):
    from datetime import timedelta

    from guideapp.auth.tokens import issue_access_token
    from guideapp.db import utcnow

    tokens = api.login(GUIDE)
    import jwt

    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    expired = issue_access_token(
        secret=app.config["SECRET_KEY"],
        staff_id=claims["sub"],
        tenant_id=claims["tid"],
        session_id=claims["sid"],
        now=utcnow() - timedelta(hours=2),
        ttl_seconds=60,
    )
    response = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
