"""Points ledger: entries are appended, never edited; the balance is their sum."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from guideapp.errors import InvalidInput
from guideapp.members.identity import log_member
from guideapp.members.models import Member, PointsEntry

SIGN = {"earn": 1, "spend": -1, "expire": -1}


def balance(session: Session, member_id: str) -> int:
    return int(session.execute(select(balance_of(member_id))).scalar_one())


def balance_of(member_id: str | BindParameter):
    """The balance as a scalar subquery, for a statement that reads more besides (the card)."""
    return (
        select(func.coalesce(func.sum(PointsEntry.points), 0))
        .where(PointsEntry.member_id == member_id)
        .scalar_subquery()
    )


def add_points(
    session: Session,
    *,
    member: Member,
    kind: str,
    points: int,
    reason: str = "",
    order_id: str | None = None,
) -> PointsEntry:
    """`points` is a positive amount for earn/spend/expire, signed for adjust."""
    if kind in SIGN:
        if points <= 0:
            raise InvalidInput(errors={"points": ["Give a positive number of points."]})
        points *= SIGN[kind]
    if points < 0 and balance(session, member.id) + points < 0:
        raise InvalidInput(errors={"points": ["The member does not have that many points."]})
    entry = PointsEntry(
        tenant_id=member.tenant_id,
        member_id=member.id,
        kind=kind,
        points=points,
        reason=reason,
        order_id=order_id,
    )
    session.add(entry)
    session.flush()
    log_member(session, member)
    return entry
