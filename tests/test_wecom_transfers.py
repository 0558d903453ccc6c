"""Customers handed over in WeCom in step with our books (guideapp/wecom/transfers.py),
against the fake WeCom (tests/fake_wecom.py): resigned vs in-service API, batches of 100,
results polled, refusals kept with the old guide, transfer_fail, rate limits, scoping."""

import json
import time

import pytest
from sqlalchemy import func, select

from guideapp import create_app
from guideapp.members.models import Binding
from guideapp.org.models import Store
from guideapp.tasks.models import Task, TaskTarget
from guideapp.wecom.models import WecomContact, WecomTransfer
from tests.conftest import (
    GUIDE,
    HQ,
    MANAGER,
    OTHER_GUIDE,
    RIVAL_HQ,
    make_config,
)
from tests.factories import make_task, staff_by_phone
from tests.test_jobs import queue_of
from tests.wecom_book import guide_of, guides_of, make_wecom_book, wecom_user
from tests.wecom_helpers import CORP_ID, post_callback

RESIGNED = "/cgi-bin/externalcontact/resigned/transfer_customer"
ONJOB = "/cgi-bin/externalcontact/transfer_customer"
RESIGNED_RESULT = "/cgi-bin/externalcontact/resigned/transfer_result"
ONJOB_RESULT = "/cgi-bin/externalcontact/transfer_result"
POLL_S = 0.3


@pytest.fixture
def app(database, connection):
    """The suite's app, polling WeCom every POLL_S and retrying a busy WeCom at once."""
    app = create_app(
        make_config(
            database,
            WECOM_TRANSFER_POLL_SECONDS=POLL_S,
            WECOM_TRANSFER_RETRY_SECONDS=0.05,
            WECOM_TRANSFER_MAX_ATTEMPTS=4,
        ),
        bind=connection,
    )
    yield app
    queue_of(app).flush()  # the job's next poll is scheduled: not another test's business


def run_due(app, session, until=None, timeout: float = 15.0) -> None:
    """Run the jobs due now (the transfers job schedules its next poll: the queue is never
    empty while customers wait); with `until`, keep at it until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        queue_of(app).work_off()
        session.expire_all()
        if until is None or until():
            return
        assert time.monotonic() < deadline, "transfers never got there"
        time.sleep(0.05)


def _transfers(session, **where):
    session.expire_all()
    stmt = select(WecomTransfer).order_by(WecomTransfer.requested_at, WecomTransfer.id)
    for name, value in where.items():
        stmt = stmt.where(getattr(WecomTransfer, name) == value)
    return list(session.scalars(stmt))


def _states(session) -> dict[str, int]:
    session.expire_all()
    rows = session.execute(
        select(WecomTransfer.state, func.count()).group_by(WecomTransfer.state)
    ).all()
    return {state: n for state, n in rows}


def _sent(fake, path) -> list[list[str]]:
    """The external_userid lists of each call of `path` the fake received."""
    return [json.loads(body)["external_userid"] for p, _, body in fake.requests if p == path]


def _contact(session, userid, external_userid):
    session.expire_all()
    return session.scalar(
        select(WecomContact).where(
            WecomContact.userid == userid, WecomContact.external_userid == external_userid
        )
    )


def _assignee(session, task_id):
    session.expire_all()
    return session.scalar(select(Task.assignee_id).where(Task.id == task_id))


@pytest.fixture
def guides(session, wecom_corp):
    """张导购 (SH001) and 陈导购 (BJ001), both WeCom users of the demo corp."""
    zhang = wecom_user(session, wecom_corp.fake, staff_by_phone(session, GUIDE), "zhang")
    chen = wecom_user(session, wecom_corp.fake, staff_by_phone(session, OTHER_GUIDE), "chen")
    return zhang, chen


def test_a_guide_leaving_with_150_customers_hands_them_over_in_two_resigned_batches(
    api, app, session, wecom_corp, guides
):
    zhang, chen = guides
    fake = wecom_corp.fake
    book = make_wecom_book(session, fake, zhang, 150)
    fake.user_leaves(CORP_ID, "zhang")  # HQ removed them in the WeCom admin too

    left = api.post(HQ, f"/api/v1/staff/{zhang.id}/leave", json={"transfer_to": chen.id})
    assert left.status_code == 200, left.get_json()
    # The HR request only recorded the transfers: WeCom is called by the job.
    assert _states(session) == {"pending": 150}
    assert fake.calls[RESIGNED] == 0
    assert all(guide_of(session, c.member_id) == chen.id for c in book[::30])

    run_due(app, session)
    assert [len(ids) for ids in _sent(fake, RESIGNED)] == [100, 50]
    assert sorted(sum(_sent(fake, RESIGNED), [])) == sorted(c.external_userid for c in book)
    assert fake.calls[ONJOB] == 0  # never the in-service API for a departed guide
    rows = _transfers(session)
    assert {(r.state, r.kind, r.handover_userid, r.takeover_userid) for r in rows} == {
        ("waiting", "resigned", "zhang", "chen")
    }
    listed = api.get(HQ, "/api/v1/wecom/transfers?state=waiting&limit=200").get_json()
    assert len(listed["items"]) == 150

    fake.complete_transfers(CORP_ID)  # WeCom's 24 hours, now
    time.sleep(POLL_S)
    run_due(app, session, until=lambda: _states(session) == {"succeeded": 150})
    assert fake.calls[RESIGNED_RESULT] >= 1 and fake.calls[ONJOB_RESULT] == 0
    for customer in book[::25]:
        assert guide_of(session, customer.member_id) == chen.id
        old = _contact(session, "zhang", customer.external_userid)
        new = _contact(session, "chen", customer.external_userid)
        assert old.status == "transferred" and old.ended_at is not None
        assert new.status == "active" and new.guide_id == chen.id
        assert new.member_id == customer.member_id
    # Nothing else to do: the next run finds nothing waiting and schedules no more polls.
    assert queue_of(app).pending_count() == 0


def test_a_customer_who_refuses_stays_with_the_old_guide_in_our_books(
    api, app, session, wecom_corp, guides
):
    zhang, chen = guides
    fake = wecom_corp.fake
    refuses, accepts = make_wecom_book(session, fake, zhang, 2)
    store = session.get(Store, zhang.store_id)
    task = make_task(session, store, assignee=zhang.id, title="回访")
    session.add(TaskTarget(tenant_id=task.tenant_id, task_id=task.id, member_id=refuses.member_id))
    session.flush()
    moved = api.post(
        HQ,
        "/api/v1/members/transfer",
        json={
            "from_guide_id": zhang.id,
            "to_guide_id": chen.id,
            "member_ids": [refuses.member_id, accepts.member_id],
        },
    )
    assert moved.status_code == 200, moved.get_json()
    assert _assignee(session, task.id) == chen.id  # the open task followed the member
    run_due(app, session)
    # zhang is still in service: the in-service API, never the resigned one.
    assert [sorted(ids) for ids in _sent(fake, ONJOB)] == [
        sorted([refuses.external_userid, accepts.external_userid])
    ]
    assert fake.calls[RESIGNED] == 0

    fake.transfer_fails(CORP_ID, "chen", refuses.external_userid, "customer_refused")
    fake.complete_transfers(CORP_ID)  # the other one is taken over
    time.sleep(POLL_S)
    run_due(app, session, until=lambda: "waiting" not in _states(session))

    failed = _transfers(session, member_id=refuses.member_id)[0]
    assert (failed.state, failed.reason, failed.kind) == ("failed", "customer_refused", "onjob")
    assert guide_of(session, refuses.member_id) == zhang.id  # where WeCom keeps them
    back = session.scalar(
        select(Binding).where(Binding.member_id == refuses.member_id, Binding.ended_at.is_(None))
    )
    assert (back.guide_id, back.reason) == (zhang.id, "wecom_kept")
    assert _assignee(session, task.id) == zhang.id  # ...and comes back with them
    assert _contact(session, "zhang", refuses.external_userid).status == "active"
    assert _contact(session, "chen", refuses.external_userid) is None

    assert _transfers(session, member_id=accepts.member_id)[0].state == "succeeded"
    assert guide_of(session, accepts.member_id) == chen.id
    # Moving the refused member back asked WeCom for nothing new.
    assert len(_transfers(session)) == 2 and fake.calls[ONJOB] == 1


def test_the_transfer_fail_callback_keeps_the_member_with_the_old_guide(
    api, app, session, wecom_corp, guides
):
    zhang, chen = guides
    fake = wecom_corp.fake
    (customer,) = make_wecom_book(session, fake, zhang, 1)
    api.post(
        HQ,
        "/api/v1/members/transfer",
        json={
            "from_guide_id": zhang.id,
            "to_guide_id": chen.id,
            "member_ids": [customer.member_id],
        },
    )
    run_due(app, session)
    assert _transfers(session)[0].state == "waiting"

    fields = fake.transfer_fails(CORP_ID, "chen", customer.external_userid, "customer_limit_exceed")
    for _ in range(2):  # WeCom retries a callback it saw no answer to: handled once
        args, body = wecom_corp.callback(fields)
        assert post_callback(api.client, args, body).get_data(as_text=True) == "success"
    run_due(app, session)

    (transfer,) = _transfers(session)
    assert (transfer.state, transfer.reason) == ("failed", "customer_limit_exceed")
    assert guide_of(session, customer.member_id) == zhang.id
    events = api.get(HQ, "/api/v1/wecom/events?event=transfer_fail").get_json()["items"]
    assert [e["state"] for e in events] == ["done"]
    assert events[0]["result"]["transfers_failed"] == [transfer.id]
    # WeCom's results say the same later (status 4): nothing changes any more.
    time.sleep(POLL_S)
    run_due(app, session)
    assert guide_of(session, customer.member_id) == zhang.id
    assert (
        session.scalar(
            select(func.count()).select_from(Binding).where(Binding.member_id == customer.member_id)
        )
        == 3
    )  # recruited, transfer, wecom_kept


def test_a_rate_limited_wecom_is_asked_again_with_backoff(api, app, session, wecom_corp, guides):
    zhang, chen = guides
    fake = wecom_corp.fake
    book = make_wecom_book(session, fake, zhang, 3)
    fake.fail_next(ONJOB, 45033, times=2)  # "接口并发调用超过限制", twice
    api.post(
        HQ, "/api/v1/members/transfer", json={"from_guide_id": zhang.id, "to_guide_id": chen.id}
    )

    run_due(app, session)
    (first, *_) = _transfers(session)
    assert (first.state, first.errcode, first.attempts) == ("pending", 45033, 1)
    assert first.next_attempt_at > first.requested_at

    run_due(app, session, until=lambda: _states(session) == {"waiting": 3})
    assert fake.calls[ONJOB] == 3  # two refused as busy, the third taken
    assert [r.attempts for r in _transfers(session)] == [3, 3, 3]
    assert {r.external_userid for r in _transfers(session)} == {c.external_userid for c in book}


def test_wecom_busy_past_the_last_attempt_keeps_the_members(api, app, session, wecom_corp, guides):
    zhang, chen = guides
    fake = wecom_corp.fake
    (customer,) = make_wecom_book(session, fake, zhang, 1)
    fake.fail_next(ONJOB, 45009, times=10)
    api.post(
        HQ, "/api/v1/members/transfer", json={"from_guide_id": zhang.id, "to_guide_id": chen.id}
    )
    run_due(app, session, until=lambda: "pending" not in _states(session))
    (transfer,) = _transfers(session)
    assert (transfer.state, transfer.reason, transfer.attempts) == (
        "failed",
        "wecom_unavailable",
        4,
    )
    assert guide_of(session, customer.member_id) == zhang.id


def test_a_customer_wecom_will_not_start_fails_at_once(api, app, session, wecom_corp, guides):
    zhang, chen = guides
    fake = wecom_corp.fake
    ours, gone = make_wecom_book(session, fake, zhang, 2)
    del fake.corps[CORP_ID].follows[("zhang", gone.external_userid)]  # deleted in WeCom
    api.post(
        HQ, "/api/v1/members/transfer", json={"from_guide_id": zhang.id, "to_guide_id": chen.id}
    )
    run_due(app, session)
    assert _transfers(session, member_id=ours.member_id)[0].state == "waiting"
    refused = _transfers(session, member_id=gone.member_id)[0]
    assert (refused.state, refused.errcode, refused.reason) == ("failed", 40131, "errcode 40131")
    assert guide_of(session, gone.member_id) == zhang.id


def test_a_successor_without_a_wecom_user_id_and_members_without_wecom(
    api, app, session, wecom_corp, guides
):
    zhang, _ = guides
    fake = wecom_corp.fake
    (customer,) = make_wecom_book(session, fake, zhang, 1)
    plain = next(g for g in guides_of(session, "SH001", zhang.tenant_id) if g.id != zhang.id)
    assert plain.wecom_userid is None
    api.post(
        HQ, "/api/v1/members/transfer", json={"from_guide_id": zhang.id, "to_guide_id": plain.id}
    )
    # Only members with a WeCom relationship get a transfer (the demo's others do not).
    (transfer,) = _transfers(session)
    assert (transfer.state, transfer.reason) == ("failed", "takeover_not_in_wecom")
    assert guide_of(session, customer.member_id) == plain.id  # HR's decision stands
    run_due(app, session)
    assert fake.calls[ONJOB] == 0


def test_who_sees_which_transfers(api, app, session, wecom_corp, guides):
    zhang, chen = guides
    fake = wecom_corp.fake
    (ours,) = make_wecom_book(session, fake, zhang, 1)  # SH001 -> BJ001
    sh2 = guides_of(session, "SH002", zhang.tenant_id)
    a = wecom_user(session, fake, sh2[0], "sh2a")
    b = wecom_user(session, fake, sh2[1], "sh2b")
    (theirs,) = make_wecom_book(session, fake, a, 1)  # SH002 -> SH002
    for frm, to in ((zhang, chen), (a, b)):
        moved = api.post(
            HQ, "/api/v1/members/transfer", json={"from_guide_id": frm.id, "to_guide_id": to.id}
        )
        assert moved.status_code == 200

    def members(phone, query=""):
        answer = api.get(phone, f"/api/v1/wecom/transfers{query}")
        assert answer.status_code == 200, answer.get_json()
        return {t["member_id"] for t in answer.get_json()["items"]}

    assert members(HQ) == {ours.member_id, theirs.member_id}
    assert members(MANAGER) == {ours.member_id}  # SH001's manager: out of their store
    assert members("13914862807") == {theirs.member_id}  # SH002's manager
    assert members(HQ, "?state=waiting") == set()
    assert members(HQ, "?state=pending&state=failed") == {ours.member_id, theirs.member_id}
    assert members(HQ, f"?member_id={ours.member_id}") == {ours.member_id}
    assert api.get(GUIDE, "/api/v1/wecom/transfers").status_code == 403
    assert api.get(OTHER_GUIDE, "/api/v1/wecom/transfers").status_code == 403
    assert members(RIVAL_HQ) == set()  # another brand's transfers are not there
    bad = api.get(HQ, "/api/v1/wecom/transfers?state=lost")
    assert bad.status_code == 422 and "state" in json.dumps(bad.get_json()["errors"])


def test_members_moving_on_before_wecom_was_asked(api, app, session, wecom_corp, guides):
    zhang, chen = guides
    fake = wecom_corp.fake
    back, onward = make_wecom_book(session, fake, zhang, 2)
    other = wecom_user(session, fake, guides_of(session, "SH002", zhang.tenant_id)[0], "sh2a")

    def move(frm, to, member):
        body = {"from_guide_id": frm.id, "to_guide_id": to.id, "member_ids": [member.member_id]}
        assert api.post(HQ, "/api/v1/members/transfer", json=body).status_code == 200

    move(zhang, chen, back)
    move(zhang, chen, onward)
    move(chen, zhang, back)  # back before the job ran: WeCom need not be asked
    move(chen, other, onward)  # on: the customer is still zhang's in WeCom, so zhang -> sh2a
    run_due(app, session)

    (withdrawn,) = _transfers(session, member_id=back.member_id)
    assert (withdrawn.state, withdrawn.reason) == ("failed", "withdrawn")
    assert guide_of(session, back.member_id) == zhang.id
    (rerouted,) = _transfers(session, member_id=onward.member_id)
    assert (rerouted.state, rerouted.handover_userid, rerouted.takeover_userid) == (
        "waiting",
        "zhang",
        "sh2a",
    )
    assert rerouted.to_guide_id == other.id
    assert _sent(fake, ONJOB) == [[onward.external_userid]]
    sent = [json.loads(body) for p, _, body in fake.requests if p == ONJOB]
    assert (sent[0]["handover_userid"], sent[0]["takeover_userid"]) == ("zhang", "sh2a")


def test_a_departed_guides_customer_who_refuses_stays_in_the_departed_guides_book(
    api, app, session, wecom_corp, guides
):
    """As after a sign-off without a successor: the manager hands them on."""
    zhang, chen = guides
    fake = wecom_corp.fake
    (customer,) = make_wecom_book(session, fake, zhang, 1)
    fake.user_leaves(CORP_ID, "zhang")
    api.post(HQ, f"/api/v1/staff/{zhang.id}/leave", json={"transfer_to": chen.id})
    run_due(app, session)
    fake.complete_transfers(CORP_ID, status=3)  # the customer declined
    time.sleep(POLL_S)
    run_due(app, session, until=lambda: "waiting" not in _states(session))
    (transfer,) = _transfers(session)
    assert (transfer.kind, transfer.state, transfer.reason) == (
        "resigned",
        "failed",
        "customer_refused",
    )
    assert guide_of(session, customer.member_id) == zhang.id
    assert fake.calls[ONJOB] == 0 and fake.calls[ONJOB_RESULT] == 0


def test_wecom_not_yet_knowing_the_guide_left_is_asked_again(api, app, session, wecom_corp, guides):
    zhang, chen = guides
    fake = wecom_corp.fake
    make_wecom_book(session, fake, zhang, 1)
    api.post(HQ, f"/api/v1/staff/{zhang.id}/leave", json={"transfer_to": chen.id})
    run_due(app, session)  # still a member in WeCom: 40097, not the in-service API
    (transfer,) = _transfers(session)
    assert (transfer.state, transfer.errcode) == ("pending", 40097)
    fake.user_leaves(CORP_ID, "zhang")  # HQ removes them in the WeCom admin
    run_due(app, session, until=lambda: _states(session) == {"waiting": 1})
    assert fake.calls[RESIGNED] == 2 and fake.calls[ONJOB] == 0


def test_the_transfers_command_sends_and_polls_now(api, app, session, wecom_corp, guides):
    zhang, chen = guides
    fake = wecom_corp.fake
    (customer,) = make_wecom_book(session, fake, zhang, 1)
    api.post(
        HQ, "/api/v1/members/transfer", json={"from_guide_id": zhang.id, "to_guide_id": chen.id}
    )
    queue_of(app).flush()  # no worker: the command does the work
    result = app.test_cli_runner().invoke(args=["wecom", "transfers", "--tenant", "stride"])
    assert result.exit_code == 0, result.output
    assert "stride: 1 sent, 1 waiting" in result.output, result.output
    fake.complete_transfers(CORP_ID)
    result = app.test_cli_runner().invoke(args=["wecom", "transfers"])
    assert "stride: 1 succeeded" in result.output, result.output
    assert _transfers(session)[0].state == "succeeded"
    assert _contact(session, "chen", customer.external_userid).status == "active"
