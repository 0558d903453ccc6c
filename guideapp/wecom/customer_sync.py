"""Onboarding a store that already uses WeCom: its guides' existing customers become
members and relationships (externalcontact/list for the count, then batch/get_by_user,
https://developer.work.weixin.qq.com/document/path/92994, paged by cursor, 100 a page).

A job (`wecom.sync_customers`, progress in customers) HQ starts from the API or the CLI.
Each page is one unit of work with its checkpoint (which users, which cursor), so a killed
worker resumes at the page it was on; recording is idempotent (customers.record), so a
page done twice, or the whole sync run twice, leaves the same rows. These customers were
not recruited by an add we saw: no recruitment is booked, but a member without a guide is
bound to the guide who has them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp import jobs, policy
from guideapp.db import utcnow
from guideapp.errors import InvalidInput
from guideapp.org.models import Staff
from guideapp.wecom import customers
from guideapp.wecom.clients import WecomClient, WecomRefused
from guideapp.wecom.service import config_row, contact_client

KIND = "wecom.sync_customers"
USERS_PER_CALL = 100  # batch/get_by_user: userid_list holds at most 100
PAGE = 100  # its limit's maximum
NO_CUSTOMERS = 84061  # externalcontact/list of a user without customers


def start_sync(
    session: Session, *, actor, userid: str | None = None, idempotency_key: str | None = None
) -> tuple[jobs.Job, bool]:
    """The sync job of the brand's mapped guides (or of one WeCom user id), HQ only; the
    same sync still under way answers that job."""
    policy.require(actor, "configure_wecom")
    contact_client(session, actor.tenant_id)  # 409 now, not in the job, when not configured
    if userid is not None and customers.guide_of(session, actor.tenant_id, userid) is None:
        raise InvalidInput(errors={"userid": ["No staff of this brand has this WeCom user id."]})
    return start(
        session,
        tenant_id=actor.tenant_id,
        userid=userid,
        started_by=actor.staff_id,
        idempotency_key=idempotency_key,
    )


def start(session: Session, *, tenant_id: str, userid=None, started_by=None, **kwargs):
    return jobs.start(
        session,
        tenant_id=tenant_id,
        kind=KIND,
        params={"userid": userid},
        started_by=started_by,
        subject=f"wecom-sync:{userid or '*'}",
        **kwargs,
    )


def _userids(session: Session, tenant_id: str, only: str | None) -> list[str]:
    if only:
        return [only]
    return list(
        session.scalars(
            select(Staff.wecom_userid)
            .where(
                Staff.tenant_id == tenant_id,
                Staff.wecom_userid.is_not(None),
                Staff.state == "active",
            )
            .order_by(Staff.wecom_userid)
        )
    )


def _count(client: WecomClient, userids: list[str]) -> int:
    total = 0
    for userid in userids:
        try:
            found = client.call(
                "externalcontact/list", "get", "externalcontact/list", params={"userid": userid}
            )
        except WecomRefused as refused:
            if refused.errcode == NO_CUSTOMERS:
                continue
            raise
        total += len(found.get("external_userid") or [])
    return total


@jobs.kind(KIND, unit="customers")
def sync(ctx: jobs.JobContext) -> dict:
    with ctx.reading() as session:
        client = contact_client(session, ctx.tenant_id)
        corp_id = config_row(session, ctx.tenant_id).corp_id  # type: ignore[union-attr]
        userids = ctx.checkpoint.get("userids") or _userids(
            session, ctx.tenant_id, ctx.params.get("userid")
        )
    if "userids" not in ctx.checkpoint:
        ctx.checkpoint.update(userids=userids, chunk=0, cursor="", members=0, contacts=0)
        ctx.progress(0, _count(client, userids))
    counts = ctx.checkpoint
    while counts["chunk"] * USERS_PER_CALL < len(userids):
        start_at = counts["chunk"] * USERS_PER_CALL
        chunk = userids[start_at : start_at + USERS_PER_CALL]
        page = client.call(
            "batch/get_by_user",
            "post",
            "externalcontact/batch/get_by_user",
            data={"userid_list": chunk, "cursor": counts["cursor"], "limit": PAGE},
        )
        rows = page.get("external_contact_list") or []
        with ctx.unit() as session:
            for row in rows:
                follow = row.get("follow_info") or {}
                customer = customers.Customer.of(row.get("external_contact") or {}, follow)
                if not customer.external_userid or not follow.get("userid"):
                    continue
                recorded = customers.record(
                    session,
                    tenant_id=ctx.tenant_id,
                    corp_id=corp_id,  # type: ignore[arg-type]
                    userid=str(follow["userid"]),
                    customer=customer,
                    state=customer.state,
                    added_at=customer.added_at or utcnow(),
                    take_over_unlocked=False,
                )
                counts["members"] += recorded.member_created
                counts["contacts"] += recorded.contact_created
            if page.get("next_cursor"):
                counts["cursor"] = page["next_cursor"]
            else:
                counts["chunk"], counts["cursor"] = counts["chunk"] + 1, ""
            ctx.progress(ctx.done + len(rows), max(ctx.total or 0, ctx.done + len(rows)))
    return {
        "users": len(userids),
        "customers": ctx.done,
        "members_created": counts["members"],
        "contacts_created": counts["contacts"],
    }
