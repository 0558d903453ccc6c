"""Idempotency-Key: a retried POST returns the first response and applies nothing twice."""

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp import create_app
from guideapp.db import make_engine, transaction
from guideapp.demo import load_demo
from guideapp.org.models import Staff
from tests.conftest import FIXTURES, HQ, MANAGER, make_config
from tests.databases import backends, scratch_database


def _new_guide(api, phone="13922223333"):
    store_id = api.get(MANAGER, "/api/v1/me").get_json()["store"]["id"]
    return {
        "name": "重试导购",
        "phone": phone,
        "role": "guide",
        "store_id": store_id,
        "password": "welcome-to-stride-2026",
    }


def _count_phone(session, phone):
    return session.scalar(select(func.count()).select_from(Staff).where(Staff.phone == phone))


def test_retry_with_same_key_replays_first_response(api, session):
    body = _new_guide(api)
    first = api.post(MANAGER, "/api/v1/staff", json=body, headers={"Idempotency-Key": "k-1"})
    second = api.post(MANAGER, "/api/v1/staff", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert _count_phone(session, body["phone"]) == 1


def test_without_a_key_a_retry_is_a_new_request(api):
    body = _new_guide(api)
    assert api.post(MANAGER, "/api/v1/staff", json=body).status_code == 201
    assert api.post(MANAGER, "/api/v1/staff", json=body).status_code == 409


def test_same_key_for_a_different_request_is_refused(api, session):
    headers = {"Idempotency-Key": "k-2"}
    assert (
        api.post(MANAGER, "/api/v1/staff", json=_new_guide(api), headers=headers).status_code == 201
    )
    other = api.post(MANAGER, "/api/v1/staff", json=_new_guide(api, "13922224444"), headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.get_json()["errors"]
    assert _count_phone(session, "13922224444") == 0


def test_keys_belong_to_their_caller(api, session):
    headers = {"Idempotency-Key": "shared-key"}
    assert (
        api.post(MANAGER, "/api/v1/staff", json=_new_guide(api), headers=headers).status_code == 201
    )
    hq = api.post(HQ, "/api/v1/staff", json=_new_guide(api, "13922225555"), headers=headers)
    assert hq.status_code == 201 and "Idempotent-Replayed" not in hq.headers


def test_failed_request_is_not_remembered(api, session):
    headers = {"Idempotency-Key": "k-3"}
    bad = {**_new_guide(api), "phone": "123"}
    assert api.post(MANAGER, "/api/v1/staff", json=bad, headers=headers).status_code == 422
    good = api.post(MANAGER, "/api/v1/staff", json=_new_guide(api), headers=headers)
    assert good.status_code == 201


def test_overlong_key_is_refused(api):
    response = api.post(
        MANAGER, "/api/v1/staff", json=_new_guide(api), headers={"Idempotency-Key": "x" * 200}
    )
    assert response.status_code == 422


@pytest.mark.parametrize("backend", backends())
def test_concurrent_duplicates_apply_once(backend, tmp_path_factory):
    """Real commits on a scratch database: eight threads send the same keyed POST at once."""
    from alembic import command

    from guideapp.migrations import alembic_config

    with scratch_database(backend, tmp_path_factory) as url:
        command.upgrade(alembic_config({}, url=url), "head")
        engine = make_engine(url)
        with Session(engine) as s, transaction(s):
            load_demo(s, FIXTURES)
        app = create_app(make_config(type("D", (), {"url": url})()))
        client = app.test_client()
        token = client.post(
            "/api/v1/auth/login", json={"phone": HQ, "password": "demo-pass-2026"}
        ).get_json()["access_token"]
        store_id = client.get(
            "/api/v1/stores?limit=1", headers={"Authorization": f"Bearer {token}"}
        ).get_json()["items"][0]["id"]
        body = {
            "name": "并发",
            "phone": "13933334444",
            "role": "guide",
            "store_id": store_id,
            "password": "welcome-to-stride-2026",
        }
        results, barrier = [], threading.Barrier(8)

        def send():
            barrier.wait()
            response = app.test_client().post(
                "/api/v1/staff",
                json=body,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "same"},
            )
            results.append((response.status_code, response.get_json()))

        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        created = [body for status, body in results if status == 201]
        assert len(created) == 8 and all(b == created[0] for b in created), results
        with Session(engine) as s:
            assert _count_phone(s, "13933334444") == 1
        app.extensions["guideapp"]["engine"].dispose()
        engine.dispose()
