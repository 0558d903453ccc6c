"""Nobody sees or changes another store's or another tenant's records (404, never 403).

SCOPED_ROUTES must list every API route that takes a record id; test_every_id_route_is_covered
fails when a new route lands without its scoping cases here.
"""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from guideapp.auth import policy
from guideapp.auth.scope import Actor
from guideapp.org.models import Staff, Store
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE, RIVAL_GUIDE, RIVAL_HQ, RIVAL_MANAGER
from tests.factories import staff_by_phone, store_by_code

# route -> (kind of record in the path, [(method, body), ...])
SCOPED_ROUTES = {
    "/api/v1/stores/<store_id>": ("store", [("GET", None), ("PATCH", {"phone": "021-0"})]),
    "/api/v1/stores/<store_id>/close": ("store", [("POST", None)]),
    "/api/v1/stores/<store_id>/reopen": ("store", [("POST", None)]),
    "/api/v1/staff/<staff_id>": ("staff", [("GET", None), ("PATCH", {"name": "改名"})]),
    "/api/v1/staff/<staff_id>/leave": ("staff", [("POST", None)]),
}


def _foreign_records(session):
    """For each caller, records of each kind they must not see: other store, other tenant."""
    bj_store = store_by_code(session, "BJ001")
    rival_store = store_by_code(session, "SH001", tenant_slug="rival")
    sh_store = store_by_code(session, "SH001")
    return {
        GUIDE: {"store": [bj_store.id, rival_store.id],
                "staff": [staff_by_phone(session, OTHER_GUIDE).id,
                          staff_by_phone(session, RIVAL_GUIDE).id]},
        MANAGER: {"store": [bj_store.id, rival_store.id],
                  "staff": [staff_by_phone(session, OTHER_GUIDE).id,
                            staff_by_phone(session, RIVAL_GUIDE).id]},
        HQ: {"store": [rival_store.id], "staff": [staff_by_phone(session, RIVAL_GUIDE).id]},
        RIVAL_HQ: {"store": [sh_store.id, bj_store.id],
                   "staff": [staff_by_phone(session, GUIDE).id,
                             staff_by_phone(session, MANAGER).id]},
    }


def test_every_id_route_is_covered(app):
    id_routes = {
        rule.rule for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and "<" in rule.rule
    }
    missing = id_routes - set(SCOPED_ROUTES)
    assert not missing, f"add scoping cases for {sorted(missing)}"


@pytest.mark.parametrize("route", sorted(SCOPED_ROUTES))
@pytest.mark.parametrize("caller", [GUIDE, MANAGER, HQ, RIVAL_HQ])
def test_foreign_records_are_404_and_unchanged(api, session, route, caller):
    kind, calls = SCOPED_ROUTES[route]
    for record_id in _foreign_records(session)[caller][kind]:
        model = Store if kind == "store" else Staff
        before = _snapshot(session, model, record_id)
        url = route.split("<")[0] + record_id + route.split(">")[1]
        for method, body in calls:
            response = api.client.open(url, method=method, json=body,
                                       headers=api.headers(caller))
            assert response.status_code == 404, (caller, method, url, response.get_json())
            assert set(response.get_json()) >= {"code", "message"}
        session.expire_all()
        assert _snapshot(session, model, record_id) == before


@pytest.mark.parametrize("caller,own_store_only", [
    (GUIDE, True), (MANAGER, True), (HQ, False), (RIVAL_HQ, False), (RIVAL_MANAGER, True),
])
@pytest.mark.parametrize("path", ["/api/v1/stores", "/api/v1/staff", "/api/v1/regions"])
def test_lists_hold_only_what_the_caller_may_see(api, session, caller, own_store_only, path):
    me = api.get(caller, "/api/v1/me").get_json()
    items = api.get(caller, f"{path}?limit=200").get_json()["items"]
    assert items
    tenant_store_ids = set(session.scalars(
        select(Store.id).where(Store.tenant_id == me["tenant"]["id"])))
    for item in items:
        if path == "/api/v1/stores":
            assert item["id"] in tenant_store_ids
            assert not own_store_only or item["id"] == me["store"]["id"]
        elif path == "/api/v1/staff":
            assert item["store_id"] is None or item["store_id"] in tenant_store_ids
            assert not own_store_only or item["store_id"] == me["store"]["id"]


def _snapshot(session, model, record_id):
    record = session.get(model, record_id)
    return {c.key: getattr(record, c.key) for c in model.__table__.columns}


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_policy_property_visible_iff_same_tenant_and_in_role_scope(session, data):
    """For any staff member and any store or staff record of either tenant."""
    everyone = session.scalars(select(Staff).order_by(Staff.id)).all()
    stores = session.scalars(select(Store).order_by(Store.id)).all()
    caller = data.draw(st.sampled_from(everyone))
    actor = Actor.for_staff(caller)
    store = data.draw(st.sampled_from(stores))
    target = data.draw(st.sampled_from(everyone))

    sees_store = session.scalar(
        policy.scoped_select(actor, Store).where(Store.id == store.id)) is not None
    expect_store = store.tenant_id == caller.tenant_id and (
        caller.role == "hq_admin" or store.id == caller.store_id)
    assert sees_store == expect_store

    sees_staff = session.scalar(
        policy.scoped_select(actor, Staff).where(Staff.id == target.id)) is not None
    expect_staff = target.tenant_id == caller.tenant_id and (
        caller.role == "hq_admin" or target.store_id == caller.store_id)
    assert sees_staff == expect_staff
    if not expect_staff:
        assert not policy.can_write(actor, target, "update") or caller.role == "hq_admin"
    if target.tenant_id != caller.tenant_id:
        assert not policy.can_write(actor, target, "update")
