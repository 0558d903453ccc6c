"""A guide's WeCom customers, built directly for transfer tests: members bound to the guide,
the guide's WeCom user id, the customers and follows on the fake (tests/fake_wecom.py), and
our WecomContact rows, as the add_external_contact handler would leave them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from guideapp.members.binding import bind
from guideapp.members.identity import create_member
from guideapp.members.models import Member
from guideapp.org.models import Staff, Store
from guideapp.wecom.models import WecomContact
from tests.wecom_helpers import CORP_ID

_books = 0


@dataclass
class Customer:
    member_id: str
    external_userid: str
    contact_id: str


def wecom_user(session, fake, staff: Staff, userid: str) -> Staff:
    """`staff` is `userid` in the corp (on the fake too)."""
    if userid not in fake.corps[CORP_ID].users:
        fake.add_user(CORP_ID, userid, name=staff.name)
    staff.wecom_userid = userid
    session.flush()
    return staff


def make_wecom_book(session, fake, guide: Staff, count: int) -> list[Customer]:
    """`count` members bound to `guide`, each a customer in the guide's WeCom contacts."""
    global _books
    _books += 1
    assert guide.wecom_userid, "wecom_user(...) first"
    made = []
    for n in range(count):
        external_userid = f"wmBook{_books:03d}x{n:05d}"
        member = create_member(
            session,
            tenant_id=guide.tenant_id,
            phone=f"155{_books:03d}{n:05d}",
            name=f"企微顾客{n}",
            source_channel="wecom",
        )
        bind(session, member=member, guide=guide, reason="recruited")
        fake.add_customer(CORP_ID, external_userid, name=member.name)
        fake.customer_adds(CORP_ID, guide.wecom_userid, external_userid, state="gd:book")
        contact = WecomContact(
            tenant_id=guide.tenant_id,
            member_id=member.id,
            guide_id=guide.id,
            userid=guide.wecom_userid,
            external_userid=external_userid,
            state="gd:book",
            status="active",
        )
        session.add(contact)
        session.flush()
        made.append(Customer(member.id, external_userid, contact.id))
    return made


def guides_of(session, store_code: str, tenant_id: str) -> list[Staff]:
    return list(
        session.scalars(
            select(Staff)
            .join(Store, Store.id == Staff.store_id)
            .where(
                Store.code == store_code,
                Staff.tenant_id == tenant_id,
                Staff.role == "guide",
                Staff.state == "active",
            )
            .order_by(Staff.phone)
        )
    )


def guide_of(session, member_id: str) -> str | None:
    session.expire_all()
    return session.scalar(select(Member.guide_id).where(Member.id == member_id))
