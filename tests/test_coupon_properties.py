"""Coupons under any sequence of issues, redemptions, orders, refunds and passing time: a
coupon is used at most once, stock never goes below zero, no member passes the limit; and
two tills redeeming one coupon at the same moment give one success and one 409."""

import itertools
import threading
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp.changelog import ChangeLogEntry
from guideapp.coupons import service
from guideapp.coupons.models import Coupon, CouponRedemption, CouponTemplate
from guideapp.db import make_engine, transaction, utcnow
from guideapp.demo import DEMO_PASSWORD, load_demo
from guideapp.errors import DomainError
from guideapp.members.binding import bind
from guideapp.members.identity import create_member
from guideapp.members.orders import ingest_order, ingest_refund
from guideapp.policy.actor import Actor
from tests.conftest import FIXTURES, GUIDE, HQ, make_config
from tests.databases import backends, run_in_threads, scratch_database
from tests.factories import staff_by_phone

TEMPLATE = {"store_ids": [], "region_ids": [], "channels": [], "valid_days": 2}
OPS = st.tuples(
    st.sampled_from(["issue"] * 3 + ["redeem"] * 3 + ["order", "refund", "wait"]),
    st.integers(0, 3),  # member / coupon / order index
    st.integers(0, 1),  # template
    st.integers(0, 30_000),  # amount (fen) or hours
)
_phones = itertools.count(1)


class Sim:
    def __init__(self, session):
        self.s = session
        self.hq = Actor.for_staff(staff_by_phone(session, HQ))
        guide = staff_by_phone(session, GUIDE)
        self.now = utcnow()
        self.members = []
        for _ in range(4):
            member = create_member(
                session,
                tenant_id=guide.tenant_id,
                phone=f"134{next(_phones):08d}",
                source_channel="pos",
            )
            bind(session, member=member, guide=guide, reason="recruited")
            self.members.append(member)
        self.templates = [
            service.create_template(
                session,
                actor=self.hq,
                data={
                    **TEMPLATE,
                    "name": "减20",
                    "kind": "amount_off",
                    "amount_off_fen": 2000,
                    "stock_total": 5,
                    "per_member_limit": 2,
                    "stackable": True,
                },
            ),
            service.create_template(
                session,
                actor=self.hq,
                data={
                    **TEMPLATE,
                    "name": "85折",
                    "kind": "percent_off",
                    "percent_off_bp": 1500,
                    "per_member_limit": 1,
                    "return_on_refund": False,
                },
            ),
        ]
        self.coupons: list[str] = []
        self.orders: dict[int, int] = {}  # order index -> amount recorded

    def step(self, op, index, which, number):
        savepoint = self.s.begin_nested()  # a refused request writes nothing, as in web.py
        try:
            getattr(self, op)(index, which, number)
        except DomainError as error:
            savepoint.rollback()
            event(f"{op} refused: {type(error).__name__}")
        else:
            savepoint.commit()

    def issue(self, index, which, _):
        coupon, _ = service.issue_to_member(
            self.s,
            actor=self.hq,
            member_id=self.members[index].id,
            template_id=self.templates[which].id,
            now=self.now,
        )
        self.coupons.append(coupon.id)

    def redeem(self, index, _, amount):
        if not self.coupons:
            return
        coupon = self.s.get(Coupon, self.coupons[index % len(self.coupons)])
        data = {
            "codes": [coupon.code],
            "channel": "pos",
            "order_no": f"P{index}",
            "amount_fen": amount,
            "store_code": "SH001",
        }
        service.redeem(self.s, actor=self.hq, data=data, now=self.now)

    def order(self, index, _, amount):
        order, _ = ingest_order(
            self.s,
            tenant_id=self.hq.tenant_id,
            data={
                "channel": "pos",
                "order_no": f"P{index}",
                "amount_fen": amount,
                "phone": self.members[index].phone,
                "ordered_at": self.now,
            },
            now=self.now,
        )
        self.orders[index] = order.amount_fen

    def refund(self, index, _, __):
        if index in self.orders:
            data = {"channel": "pos", "order_no": f"P{index}", "refund_no": f"R{index}"}
            ingest_refund(
                self.s,
                tenant_id=self.hq.tenant_id,
                data={**data, "amount_fen": self.orders[index]},
                now=self.now,
            )

    def wait(self, _, __, hours):
        self.now += timedelta(hours=hours % 72)

    def check(self):
        s = self.s
        live = dict(
            s.execute(
                select(CouponRedemption.coupon_id, func.count())
                .where(CouponRedemption.reversed_at.is_(None))
                .group_by(CouponRedemption.coupon_id)
            ).all()
        )
        for coupon in s.scalars(select(Coupon).where(Coupon.id.in_(self.coupons))):
            s.refresh(coupon)
            assert live.get(coupon.id, 0) <= 1, "a coupon used twice"
            assert (coupon.state == "used") == (live.get(coupon.id, 0) == 1) or (
                coupon.state == "used"
                and not s.get(CouponTemplate, coupon.template_id).return_on_refund
            )
        for template in self.templates:
            s.refresh(template)
            issued = s.scalar(select(func.count()).where(Coupon.template_id == template.id))
            assert template.issued_count == issued
            assert template.stock_total is None or issued <= template.stock_total
            per_member = s.execute(
                select(func.count())
                .where(Coupon.template_id == template.id)
                .group_by(Coupon.member_id)
            ).scalars()
            assert all(n <= template.per_member_limit for n in per_member)
        for order_no, amount, discount in s.execute(
            select(
                CouponRedemption.order_no,
                func.max(CouponRedemption.amount_fen),
                func.sum(CouponRedemption.discount_fen),
            )
            .where(CouponRedemption.reversed_at.is_(None))
            .group_by(CouponRedemption.order_no)
        ):
            assert discount <= amount, f"{order_no} discounted past its amount"


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=5, max_size=30))
def test_coupon_invariants_hold_for_any_sequence(session, ops):
    savepoint = session.begin_nested()
    try:
        sim = Sim(session)
        for op in ops:
            sim.step(*op)
            sim.check()
        event(f"coupons issued: {min(len(sim.coupons), 6)}")
        reversed_ = select(func.count()).where(CouponRedemption.reversed_at.is_not(None))
        event(f"redemptions reversed by a refund: {session.scalar(reversed_) > 0}")
    finally:
        savepoint.rollback()


@pytest.mark.parametrize("backend", backends())
def test_two_tills_redeeming_one_coupon_at_once_get_one_success(backend, tmp_path_factory):
    """Real commits on a real database, two HTTP requests released by one barrier, for
    several coupons: each coupon is redeemed once, the other till gets a clear 409."""
    from alembic import command

    from guideapp import create_app
    from guideapp.migrations import alembic_config
    from tests.conftest import Database

    with scratch_database(backend, tmp_path_factory) as url:
        command.upgrade(alembic_config({}, url=url), "head")
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as s, transaction(s):
            load_demo(s, FIXTURES)
            hq = Actor.for_staff(staff_by_phone(s, HQ))
            template = service.create_template(
                s,
                actor=hq,
                data={**TEMPLATE, "name": "减5", "kind": "amount_off", "amount_off_fen": 500},
            )
            guide = staff_by_phone(s, GUIDE)
            codes = []
            for _ in range(6):
                member = create_member(
                    s,
                    tenant_id=guide.tenant_id,
                    phone=f"133{next(_phones):08d}",
                    source_channel="pos",
                )
                coupon, _ = service.issue_to_member(
                    s, actor=hq, member_id=member.id, template_id=template.id
                )
                codes.append(coupon.code)
        app = create_app(make_config(Database(backend, url, engine)))
        token = (
            app.test_client()
            .post("/api/v1/auth/login", json={"phone": HQ, "password": DEMO_PASSWORD})
            .get_json()["access_token"]
        )
        for code in codes:
            barrier, statuses = threading.Barrier(2), []
            tills = itertools.count(1)

            def till(code=code, tills=tills, barrier=barrier, statuses=statuses):
                body = {
                    "codes": [code],
                    "channel": "pos",
                    "order_no": f"{code}-{next(tills)}",
                    "amount_fen": 10_000,
                    "store_code": "SH001",
                }
                client = app.test_client()
                barrier.wait()
                response = client.post(
                    "/api/v1/coupons/redeem",
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                )
                statuses.append((response.status_code, response.get_json()))

            run_in_threads(till, 2)
            assert sorted(s for s, _ in statuses) == [200, 409], statuses
            refused = next(body for status, body in statuses if status == 409)
            assert refused["errors"]["reason"] == ["used"]
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(CouponRedemption)) == len(codes)
            # Each coupon's change log: its issue and its one redemption; a till that lost
            # the race stamped nothing (the redemption stamps in its own statement).
            stamps = conn.execute(
                select(ChangeLogEntry.record_id, func.count(func.distinct(ChangeLogEntry.seq)))
                .where(ChangeLogEntry.table_name == "coupons")
                .group_by(ChangeLogEntry.record_id)
            ).all()
            assert sorted(n for _, n in stamps) == [2] * len(codes), stamps
        engine.dispose()
