"""Every write of an organisation record lands in the change log in its own transaction."""

import pytest
from sqlalchemy import func, select

from guideapp.changelog import ChangeLogEntry, SyncCounter
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
    rows = session.scalars(
        select(ChangeLogEntry).where(
            ChangeLogEntry.seq == before + 1, ChangeLogEntry.tenant_id == tenant_id
        )
    )
    scopes = {(r.table_name, r.record_id, r.scope) for r in rows}
    assert ("stores", store_id, f"s:{store_id}") in scopes
    assert ("stores", store_id, f"t:{tenant_id}") in scopes


def test_a_refused_write_logs_nothing(api, session):
    me = api.get(MANAGER, "/api/v1/me").get_json()
    tenant_id = me["tenant"]["id"]
    before_counter = _counter(session, tenant_id)
    before_rows = session.scalar(select(func.count()).select_from(ChangeLogEntry))
    response = api.patch(
        MANAGER, f"/api/v1/stores/{me['store']['id']}", json={"service_radius_m": 1}
    )
    assert response.status_code == 422
    assert (
        api.patch(
            MANAGER, f"/api/v1/stores/{me['store']['id']}", json={"service_radius_m": 900}
        ).status_code
        == 403
    )
    assert _counter(session, tenant_id) == before_counter
    assert session.scalar(select(func.count()).select_from(ChangeLogEntry)) == before_rows


def test_reads_do_not_bump_the_counter(api, session):
    tenant_id = api.get(HQ, "/api/v1/me").get_json()["tenant"]["id"]
    before = _counter(session, tenant_id)
    api.get(HQ, "/api/v1/stores")
    assert _counter(session, tenant_id) == before


def _demo_store(session):
    from guideapp.org.models import Store

    return session.scalar(select(Store).where(Store.code == "SH001"))


def test_a_bare_session_commit_stamps_the_notes(session):
    """Stamping is a session event: code that never calls db.commit() cannot drop entries."""
    from guideapp.changelog import log_change, store_scope

    store = _demo_store(session)
    before = _counter(session, store.tenant_id)
    log_change(
        session,
        tenant_id=store.tenant_id,
        table="stores",
        record_id=store.id,
        scopes=[store_scope(store.id)],
    )
    session.commit()
    assert _counter(session, store.tenant_id) == before + 1
    assert session.scalar(
        select(ChangeLogEntry.scope).where(
            ChangeLogEntry.tenant_id == store.tenant_id, ChangeLogEntry.seq == before + 1
        )
    ) == store_scope(store.id)


def test_a_rolled_back_savepoint_forgets_its_notes_and_keeps_the_others(session):
    from guideapp.changelog import log_change, staff_scope, store_scope

    store = _demo_store(session)
    before = _counter(session, store.tenant_id)
    log_change(
        session,
        tenant_id=store.tenant_id,
        table="stores",
        record_id=store.id,
        scopes=[store_scope(store.id)],
    )
    savepoint = session.begin_nested()
    log_change(
        session,
        tenant_id=store.tenant_id,
        table="stores",
        record_id=store.id,
        scopes=[staff_scope("nobody")],
    )
    savepoint.rollback()
    with session.begin_nested():  # a released savepoint stamps nothing yet
        log_change(
            session,
            tenant_id=store.tenant_id,
            table="stores",
            record_id=store.id,
            scopes=[staff_scope("kept")],
        )
    assert _counter(session, store.tenant_id) == before
    session.commit()
    assert _counter(session, store.tenant_id) == before + 1
    scopes = set(
        session.scalars(
            select(ChangeLogEntry.scope).where(
                ChangeLogEntry.tenant_id == store.tenant_id, ChangeLogEntry.seq == before + 1
            )
        )
    )
    assert scopes == {store_scope(store.id), staff_scope("kept")}


def test_a_savepoint_whose_flush_failed_forgets_its_notes(session):
    """Two deliveries of one WeChat Pay notification at once (make faults, drop_and_retry):
    the second's INSERT meets the first's unique row inside `begin_nested()`, and SQLAlchemy
    rolls the SAVEPOINT back from the flush's own subtransaction. The member it had made
    and noted is gone, so its note must go too: no change-log row for a member that never
    was."""
    from sqlalchemy.exc import IntegrityError

    from guideapp.changelog import log_change, staff_scope, store_scope
    from guideapp.idempotency.models import IdempotentRequest

    store = _demo_store(session)
    before = _counter(session, store.tenant_id)
    log_change(
        session,
        tenant_id=store.tenant_id,
        table="stores",
        record_id=store.id,
        scopes=[store_scope(store.id)],
    )
    session.add(IdempotentRequest(owner="o", key="k", method="POST", path="/", request_hash="h"))
    session.flush()
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            log_change(
                session,
                tenant_id=store.tenant_id,
                table="stores",
                record_id=store.id,
                scopes=[staff_scope("never")],
            )
            twin = IdempotentRequest(owner="o", key="k", method="POST", path="/", request_hash="h")
            session.add(twin)
            session.flush()  # the unique (owner, key) refuses it: the SAVEPOINT rolls back
    session.commit()
    scopes = set(
        session.scalars(
            select(ChangeLogEntry.scope).where(
                ChangeLogEntry.tenant_id == store.tenant_id, ChangeLogEntry.seq == before + 1
            )
        )
    )
    assert scopes == {store_scope(store.id)}


def test_a_rolled_back_transaction_leaves_no_notes_for_the_next(session):
    from guideapp.changelog import log_change, store_scope

    store = _demo_store(session)
    before = _counter(session, store.tenant_id)
    log_change(
        session,
        tenant_id=store.tenant_id,
        table="stores",
        record_id=store.id,
        scopes=[store_scope(store.id)],
    )
    session.rollback()
    session.commit()
    assert _counter(session, store.tenant_id) == before
