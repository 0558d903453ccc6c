"""Every write of an organisation record lands in the change log in its own transaction."""
from sqlalchemy import func, select

from guideapp.sync.models import ChangeLogEntry, SyncCounter
from tests.conftest import HQ, MANAGER


def _counter(session, tenant_id):
    session.expire_all()
    return session.scalar(select(SyncCounter.value).where(SyncCounter.tenant_id == tenant_id))


def test_a_write_is_logged_with_the_next_sequence_in_its_scopes(api, session):
    me = api.get(MANAGER, "/api/v1/me").get_json()
    tenant_id, store_id = me["tenant"]["id"], me["store"]["id"]
    before = _counter(session, tenant_id)
    response = api.patch(MANAGER, f"/api/v1/stores/{store_id}", json={"phone": "021-5"})
    assert response.status_code == 200
    assert _counter(session, tenant_id) == before + 1
    rows = session.scalars(select(ChangeLogEntry).where(ChangeLogEntry.seq == before + 1,
                                                        ChangeLogEntry.tenant_id == tenant_id))
    scopes = {(r.table_name, r.record_id, r.scope) for r in rows}
    assert ("stores", store_id, f"s:{store_id}") in scopes
    assert ("stores", store_id, f"t:{tenant_id}") in scopes


def test_a_refused_write_logs_nothing(api, session):
    me = api.get(MANAGER, "/api/v1/me").get_json()
    tenant_id = me["tenant"]["id"]
    before_counter = _counter(session, tenant_id)
    before_rows = session.scalar(select(func.count()).select_from(ChangeLogEntry))
    response = api.patch(MANAGER, f"/api/v1/stores/{me['store']['id']}",
                         json={"service_radius_m": 1})
    assert response.status_code == 422
    assert api.patch(MANAGER, f"/api/v1/stores/{me['store']['id']}",
                     json={"service_radius_m": 900}).status_code == 403
    assert _counter(session, tenant_id) == before_counter
    assert session.scalar(select(func.count()).select_from(ChangeLogEntry)) == before_rows


def test_reads_do_not_bump_the_counter(api, session):
    tenant_id = api.get(HQ, "/api/v1/me").get_json()["tenant"]["id"]
    before = _counter(session, tenant_id)
    api.get(HQ, "/api/v1/stores")
    assert _counter(session, tenant_id) == before
