"""Issuing coupons, every way in one function: one member or a million, exactly once.

Every issue of a template first locks its row (`SELECT ... FOR UPDATE`), so the stock
count, the per-member limit and the issue keys are checked by one issuer at a time: two
guides sending the last coupon get one coupon and one 409, never a stock below zero.
Rows go in set-based batches (COPY on PostgreSQL for big ones); each member's coupon is
keyed by `issue_key`, so a rerun (a job after a crash, a rule after downtime, a retried
push) issues nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp.changelog import log_changes
from guideapp.coupons import rules
from guideapp.coupons.models import Coupon, CouponTemplate
from guideapp.db import any_of, insert_rows, new_id, utcnow
from guideapp.errors import Conflict, NotFound
from guideapp.members.identity import member_scopes
from guideapp.members.models import Member
from guideapp.org.models import Staff, Tenant

log = logging.getLogger(__name__)

BATCH = 5_000
# Why a member got no coupon; a single issue answers 409 with the reason.
OUT_OF_STOCK = "out_of_stock"
LIMIT_REACHED = "per_member_limit"
ALREADY_ISSUED = "already_issued"
NOT_A_MEMBER = "not_an_active_member"
STAFF = "staff_member"
REFUSALS = {
    OUT_OF_STOCK: "The template's stock is used up ({stock} issued).",
    LIMIT_REACHED: "The member already holds the template's limit of {limit} per member.",
    STAFF: "Coupons are for customers: this member is one of our staff.",
    NOT_A_MEMBER: "The member is merged or gone.",
}


@dataclass
class Issue:
    """How a batch of coupons came to be (kept on every coupon it issues)."""

    source: str  # rule, staff, bulk, scan, points
    key: Callable[[str], str]  # member id -> issue key
    source_id: str | None = None
    issued_by: str | None = None
    store_id: str | None = None
    task_id: str | None = None
    campaign_id: str | None = None
    coupon_id: str | None = None  # one member's coupon, with the id a phone gave it offline


@dataclass
class Issued:
    coupons: dict[str, str] = field(default_factory=dict)  # member id -> new coupon id
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> members

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] = self.skipped.get(reason, 0) + count


def lock_template(session: Session, *, tenant_id: str, template_id: str) -> CouponTemplate:
    template = session.scalar(
        select(CouponTemplate)
        .where(CouponTemplate.tenant_id == tenant_id, CouponTemplate.id == template_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if template is None:
        raise NotFound(f"Coupon template {template_id} not found.")
    return template


def issue(
    session: Session,
    *,
    template: CouponTemplate,
    member_ids: Iterable[str],
    how: Issue,
    now: datetime | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Issued:
    """Issue one coupon of `template` (already locked) to each member that may have one.

    Members skipped are counted by reason: gone or merged, staff, at the per-member limit,
    already issued under this key (a rerun), or beyond the stock. `on_batch(done)` reports
    progress and may raise to stop (a job's cancel checkpoint): what was issued stays."""
    now = now or utcnow()
    if how.coupon_id is not None:
        member_ids = list(member_ids)
        if len(set(member_ids)) > 1:
            raise ValueError("A coupon id chosen in advance is one member's.")
    zone = ZoneInfo(session.get_one(Tenant, template.tenant_id).timezone)
    valid_from, valid_to = rules.validity(
        issued_at=now,
        zone=zone,
        valid_from=template.valid_from,
        valid_to=template.valid_to,
        valid_days=template.valid_days,
    )
    result = Issued()
    batch: list[str] = []
    done = 0
    for member_id in member_ids:
        batch.append(member_id)
        if len(batch) >= BATCH:
            _issue_batch(session, template, batch, how, now, valid_from, valid_to, result)
            done += len(batch)
            batch = []
            if on_batch is not None:
                on_batch(done)
    if batch:
        _issue_batch(session, template, batch, how, now, valid_from, valid_to, result)
        done += len(batch)
        if on_batch is not None:
            on_batch(done)
    _note_low_stock(template, now)
    return result


def issue_one(session: Session, *, template: CouponTemplate, member_id: str, how: Issue, now=None):
    """One coupon for one member, or a Conflict naming why not. A repeated key returns the
    coupon issued the first time (a retried push, a second scan of the same poster)."""
    result = issue(session, template=template, member_ids=[member_id], how=how, now=now)
    if member_id in result.coupons:
        return session.get_one(Coupon, result.coupons[member_id]), True
    if ALREADY_ISSUED in result.skipped:
        found = session.scalar(
            select(Coupon).where(
                Coupon.tenant_id == template.tenant_id, Coupon.issue_key == how.key(member_id)
            )
        )
        if found is not None:
            return found, False
    reason = next(iter(result.skipped), NOT_A_MEMBER)
    message = REFUSALS[reason].format(stock=template.stock_total, limit=template.per_member_limit)
    raise Conflict(message, errors={"member_id": [message], "reason": [reason]})


def _issue_batch(session, template, member_ids, how, now, valid_from, valid_to, result) -> None:
    tenant_id = template.tenant_id
    keys = {m: how.key(m) for m in dict.fromkeys(member_ids)}
    taken = set(
        session.scalars(
            select(Coupon.issue_key).where(
                Coupon.tenant_id == tenant_id, any_of(session, Coupon.issue_key, keys.values())
            )
        )
    )
    members = session.execute(
        select(Member.id, Member.tenant_id, Member.guide_id, Member.store_id, Member.phone).where(
            Member.tenant_id == tenant_id,
            Member.state == "active",
            any_of(session, Member.id, keys),
        )
    ).all()
    staff_phones = set(
        session.scalars(
            select(Staff.phone).where(
                any_of(session, Staff.phone, [m.phone for m in members if m.phone])
            )
        )
    )
    held = dict(
        session.execute(
            select(Coupon.member_id, func.count())
            .where(
                Coupon.template_id == template.id,
                Coupon.state != "revoked",
                any_of(session, Coupon.member_id, keys),
            )
            .group_by(Coupon.member_id)
        ).all()
    )
    found = {m.id: m for m in members}
    rows: list[dict] = []
    scopes: list[tuple[str, str]] = []
    for member_id, key in keys.items():
        member = found.get(member_id)
        if key in taken:
            result.skip(ALREADY_ISSUED)
        elif member is None:
            result.skip(NOT_A_MEMBER)
        elif member.phone and member.phone in staff_phones:
            result.skip(STAFF)
        elif held.get(member_id, 0) >= template.per_member_limit:
            result.skip(LIMIT_REACHED)
        elif (
            template.stock_total is not None
            and template.issued_count + len(rows) >= template.stock_total
        ):
            result.skip(OUT_OF_STOCK)
        else:
            coupon_id = how.coupon_id or new_id()
            rows.append(
                _row(template, coupon_id, member_id, key, how, now, valid_from, valid_to, member)
            )
            result.coupons[member_id] = coupon_id
            # A coupon replicates with its member's card.
            scopes.extend((coupon_id, s) for s in member_scopes(member))
    if not rows:
        return
    insert_rows(session, Coupon.__table__, rows)
    template.issued_count += len(rows)
    log_changes(session, tenant_id=tenant_id, table="coupons", rows=scopes)


def _row(template, coupon_id, member_id, key, how: Issue, now, valid_from, valid_to, member):
    return {
        "id": coupon_id,
        "tenant_id": template.tenant_id,
        "template_id": template.id,
        "template_version": template.version,
        "member_id": member_id,
        "code": rules.new_code(),
        "state": "available",
        "state_reason": None,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "issue_key": key,
        "source": how.source,
        "source_id": how.source_id,
        "issued_by": how.issued_by,
        # The issuing store for reports: the sender's, else the member's home store.
        "store_id": how.store_id or member.store_id,
        "task_id": how.task_id,
        "campaign_id": how.campaign_id,
        "issued_at": now,
        "used_at": None,
        "updated_at": now,
    }


def _note_low_stock(template: CouponTemplate, now: datetime) -> None:
    if template.stock_total is None or template.low_stock_threshold is None:
        return
    left = template.stock_total - template.issued_count
    if left <= template.low_stock_threshold and template.low_stock_at is None:
        template.low_stock_at = now
        log.warning(
            "coupon template low on stock",
            extra={"template_id": template.id, "tenant_id": template.tenant_id, "left": left},
        )
