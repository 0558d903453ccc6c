"""The policy itself: a leaf that imports no domain, deny by default, every access decision
asked through it (phones, HQ's feeds, the card's open tasks, the push's server-wins)."""

import io
import json
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from guideapp.access import register_access_rules
from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.changelog import ChangeLogEntry
from guideapp.config import PROJECT_ROOT
from guideapp.errors import Forbidden, NotFound
from guideapp.members.models import Member
from guideapp.sync.models import SyncRejection
from guideapp.tasks.models import TaskTarget
from tests.conftest import GUIDE, HQ, MANAGER
from tests.factories import make_task, member_of, staff_by_phone, store_by_code
from tests.sync_phone import Phone

COLLEAGUE = "13913775684"  # another guide of SH001
MEMBERS_CSV = (PROJECT_ROOT / "fixtures" / "imports" / "members.csv").read_bytes()
DOMAINS = ("org", "members", "tasks", "materials", "replies", "scans", "commissions", "sync")

# The package root builds the app (create_app imports every domain), so the probe loads
# `guideapp` as a bare namespace and imports only what policy.py itself pulls in.
PROBE = f"""
import json, sys, types
root = types.ModuleType("guideapp")
root.__path__ = [{str(PROJECT_ROOT / "guideapp")!r}]
sys.modules["guideapp"] = root
import guideapp.policy
print(json.dumps(sorted(m for m in sys.modules if m.startswith("guideapp."))))
"""


def test_policy_imports_no_domain():
    run = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(run.stdout)
    assert "guideapp.policy" in loaded
    assert not [m for m in loaded if m.split(".")[1] in DOMAINS], loaded
    assert not [m for m in loaded if m.startswith("guideapp.auth.") and "rules" in m]


def _actor(session, phone) -> Actor:
    return Actor.for_staff(staff_by_phone(session, phone))


def test_a_model_with_no_rule_is_invisible(session, monkeypatch):
    hq = _actor(session, HQ)
    # The change log has rows of HQ's tenant, and no read rule: nobody sees them.
    rows = session.scalar(
        select(func.count())
        .select_from(ChangeLogEntry)
        .where(ChangeLogEntry.tenant_id == hq.tenant_id)
    )
    assert rows > 0 and ChangeLogEntry not in policy.registered_models()
    assert session.scalars(policy.scoped_select(hq, ChangeLogEntry)).all() == []
    entry = session.scalar(select(ChangeLogEntry).where(ChangeLogEntry.tenant_id == hq.tenant_id))
    with pytest.raises(NotFound):
        policy.get_visible(session, hq, ChangeLogEntry, entry.id)
    assert not policy.can_write(hq, entry, "update")
    # Take the member rules away and even HQ sees no member and may change none.
    member = member_of(session, GUIDE)
    assert session.scalar(policy.scoped_select(hq, Member).where(Member.id == member.id))
    monkeypatch.delitem(policy._read_rules, Member)
    monkeypatch.delitem(policy._write_rules, Member)
    assert session.scalars(policy.scoped_select(hq, Member)).first() is None
    assert not policy.can_write(hq, member, "update")


def test_an_unknown_decision_is_refused(session):
    hq = _actor(session, HQ)
    assert not policy.allows(hq, "no.such.decision")
    with pytest.raises(Forbidden):
        policy.require(hq, "no.such.decision")


def test_registering_again_changes_nothing(session):
    guide = _actor(session, GUIDE)
    before = (
        policy.registered_models(),
        session.scalars(policy.scoped_select(guide, Member).with_only_columns(Member.id)).all(),
    )
    register_access_rules()
    after = (
        policy.registered_models(),
        session.scalars(policy.scoped_select(guide, Member).with_only_columns(Member.id)).all(),
    )
    assert before == after and len(before[1]) > 0


@pytest.mark.parametrize(
    "phone, expected", [(GUIDE, 403), (MANAGER, 403), (HQ, 200)], ids=["guide", "manager", "hq"]
)
def test_only_hq_feeds_orders_refunds_and_files(api, session, phone, expected):
    member = member_of(session, GUIDE)
    order = {
        "order_no": f"P-{phone}",
        "channel": "pos",
        "phone": member.phone,
        "amount_fen": 100,
        "ordered_at": "2025-06-01T10:00:00Z",
    }
    answer = api.post(phone, "/api/v1/orders", json=order)
    assert answer.status_code == expected, answer.get_json()
    refund = {
        "channel": "pos",
        "order_no": f"P-{phone}",
        "refund_no": f"R-{phone}",
        "amount_fen": 10,
        "refunded_at": "2025-06-02T10:00:00Z",
    }
    answer = api.post(phone, "/api/v1/orders/refunds", json=refund)
    assert answer.status_code == expected, answer.get_json()
    upload = api.client.post(
        "/api/v1/imports/members?dry_run=true&wait=true",
        data={"file": (io.BytesIO(MEMBERS_CSV), "members.csv")},
        headers=api.headers(phone),
        content_type="multipart/form-data",
    )
    assert upload.status_code == expected, upload.get_json()
    if expected == 403:
        assert upload.get_json()["message"] == "Only HQ feeds orders and imports into the system."


def test_card_lists_only_the_open_tasks_the_caller_may_read(api, session):
    member = member_of(session, GUIDE)
    member.guide_id = None  # the store's pool: both guides of SH001 see the card
    colleague = staff_by_phone(session, COLLEAGUE)
    task = make_task(session, store_by_code(session, "SH001"), assignee=colleague.id)
    session.add(TaskTarget(tenant_id=task.tenant_id, task_id=task.id, member_id=member.id))
    session.flush()
    url = f"/api/v1/members/{member.id}/card"
    for caller, sees in ((GUIDE, False), (COLLEAGUE, True), (MANAGER, True), (HQ, True)):
        card = api.get(caller, url).get_json()
        assert (task.id in [t["task_id"] for t in card["open_tasks"]]) is sees, caller


def test_server_wins_on_a_target_of_a_cancelled_task(api, session):
    me = staff_by_phone(session, GUIDE)
    member = member_of(session, GUIDE)
    task = make_task(session, store_by_code(session, "SH001"), assignee=me.id)
    target = TaskTarget(tenant_id=task.tenant_id, task_id=task.id, member_id=member.id)
    session.add(target)
    session.flush()
    phone = Phone(api, GUIDE)
    phone.pull()
    assert target.id in phone.tables["task_targets"]
    api.post(MANAGER, f"/api/v1/tasks/{task.id}/cancel")
    phone.update("task_targets", target.id, result="done", note="已联系")
    assert phone.push().status_code == 200
    kept = session.scalar(select(SyncRejection).where(SyncRejection.record_id == target.id))
    assert kept is not None and kept.server_won and kept.payload["note"] == "已联系"
    assert kept.reason == "The manager cancelled this task."  # server_wins, not a conflict
    session.expire_all()
    assert session.get(TaskTarget, target.id).result is None
