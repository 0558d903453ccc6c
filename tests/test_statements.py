"""guideapp/statements.py: hot statements run past SQLAlchemy on the DBAPI connection keep
what a Core execution gives (typed values in and out, SQLAlchemy's errors, the slow-query
log), and a read before a request's first write opens no transaction.

The till's end-to-end behaviour (one success of two tills, the 409's message, the change
log a phone pulls) is in test_coupons.py, test_coupon_properties.py and test_coupon_sync.py.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import String, bindparam, insert, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from guideapp.auth.models import AuthSession
from guideapp.changelog import SyncCounter
from guideapp.db import make_engine, transaction, utcnow
from guideapp.logs import configure_logging
from guideapp.org.models import Tenant
from guideapp.statements import HotRead, Prebuilt
from tests.conftest import HQ
from tests.databases import backends
from tests.test_inbox_served import _served_app

_SESSIONS_SINCE = Prebuilt(
    lambda _dialect, _variant: (
        select(AuthSession.id, AuthSession.created_at)
        .where(AuthSession.created_at >= bindparam("since", type_=AuthSession.created_at.type))
        .order_by(AuthSession.created_at)
    ),
    reads=True,
)


def test_values_go_in_and_come_out_typed_as_in_core(session):
    """A UTC time goes in through its type's bind processing (a naive one is refused) and
    comes back timezone-aware in UTC, on SQLite too, which keeps no zone."""
    since = datetime(2000, 1, 1, tzinfo=timezone.utc)
    rows = _SESSIONS_SINCE.execute(session, {"since": since})
    core = session.execute(
        select(AuthSession.id, AuthSession.created_at)
        .where(AuthSession.created_at >= since)
        .order_by(AuthSession.created_at)
    ).all()
    assert [tuple(r) for r in core] == list(rows)
    assert rows.keys == ["id", "created_at"]
    assert all(r["created_at"].utcoffset().total_seconds() == 0 for r in rows.mappings())
    with pytest.raises(StatementError, match="naive datetime"):  # as Core raises it
        _SESSIONS_SINCE.execute(session, {"since": datetime(2000, 1, 1)})


def test_a_driver_error_is_sqlalchemys_error_without_its_parameters(session):
    tenant = session.scalars(select(Tenant)).first()
    again = Prebuilt(
        lambda _d, _v: (
            insert(SyncCounter)
            .values(tenant_id=bindparam("tenant", type_=String), value=1)
            .returning(SyncCounter.value)
        )
    )
    with pytest.raises(IntegrityError) as raised:
        again.execute(session, {"tenant": tenant.id})  # the tenant has its counter row
    assert "[SQL parameters hidden" in str(raised.value)  # as the engine's own errors


def test_the_slow_query_log_sees_statements_run_past_sqlalchemy(database, capsys):
    engine = make_engine(database.url, slow_query_ms=0.0001)
    configure_logging("WARNING")
    read = HotRead(select(Tenant.slug).where(Tenant.slug == bindparam("slug")))
    try:
        assert read.first(engine, {"slug": "stride"}) == ("stride",)
        with Session(engine) as session:
            _SESSIONS_SINCE.execute(session, {"since": utcnow()})
    finally:
        engine.dispose()
    logged = [line for line in capsys.readouterr().err.splitlines() if "slow query" in line]
    assert any("FROM tenants" in line for line in logged), logged
    assert any("FROM auth_sessions" in line for line in logged), logged
    assert not any("stride" in line for line in logged)


@pytest.fixture(params=backends()[1:])  # psycopg's transaction state: PostgreSQL only
def served_postgres(request, tmp_path_factory):
    with _served_app(request.param, tmp_path_factory) as app_and_api:
        yield app_and_api


def test_a_read_before_the_first_write_opens_no_transaction(served_postgres):
    app, _ = served_postgres
    engine = app.extensions["guideapp"]["engine"]
    with Session(engine) as session, transaction(session):
        driver = session.connection().connection.driver_connection
        _SESSIONS_SINCE.execute(session, {"since": utcnow()})
        assert driver.info.transaction_status.name == "IDLE"  # no BEGIN was sent
        assert not driver.autocommit  # and the connection is as it was
        session.execute(text("UPDATE sync_counters SET value = value"))
        assert driver.info.transaction_status.name == "INTRANS"
        _SESSIONS_SINCE.execute(session, {"since": utcnow()})  # now inside it
        assert driver.info.transaction_status.name == "INTRANS"


def test_a_till_refused_a_used_coupon_keeps_the_connections_prepared_statements(
    served_postgres,
):
    """A refusal before any write rolls nothing back: psycopg forgets a connection's
    prepared statements at every ROLLBACK (DEALLOCATE ALL), and the next requests would
    prepare theirs again, a round trip each."""
    from guideapp.coupons import service
    from guideapp.policy.actor import Actor
    from guideapp.members.identity import create_member
    from tests.factories import staff_by_phone
    from tests.test_coupon_properties import TEMPLATE

    app, api = served_postgres
    engine = app.extensions["guideapp"]["engine"]
    with Session(engine, expire_on_commit=False) as s, transaction(s):
        hq = Actor.for_staff(staff_by_phone(s, HQ))
        template = service.create_template(
            s,
            actor=hq,
            data={**TEMPLATE, "name": "减5", "kind": "amount_off", "amount_off_fen": 500},
        )
        member = create_member(s, tenant_id=hq.tenant_id, phone="13355550001", source_channel="pos")
        coupon, _ = service.issue_to_member(
            s, actor=hq, member_id=member.id, template_id=template.id
        )
    headers = api.headers(HQ)
    engine.dispose()  # from here on, the requests share one pooled connection

    def redeem(order_no: str):
        body = {
            "codes": [coupon.code],
            "channel": "pos",
            "order_no": order_no,
            "amount_fen": 10_000,
            "store_code": "SH001",
        }
        return api.client.post("/api/v1/coupons/redeem", json=body, headers=headers)

    def prepared() -> list[str]:
        pooled = engine.raw_connection()
        driver = pooled.driver_connection
        driver.autocommit = True  # (a transaction of ours would end in a ROLLBACK too)
        try:
            return [r[0] for r in driver.execute("SELECT statement FROM pg_prepared_statements")]
        finally:
            driver.autocommit = False
            pooled.close()

    assert redeem("P-1").status_code == 200
    before = prepared()
    assert any("FROM stores" in s for s in before), before  # the till's read, prepared
    refused = redeem("P-2")
    assert refused.status_code == 409
    assert "already used on order P-1" in refused.get_json()["message"]
    assert set(before) <= set(prepared()), "the refusal's ROLLBACK forgot them"
