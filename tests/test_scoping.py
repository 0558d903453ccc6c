"""Nobody sees or changes another store's or another tenant's records (404, never 403).

SCOPED_ROUTES must list every API route that takes a record id; test_every_id_route_is_covered
fails when a new route lands without its scoping cases here.
"""

import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from guideapp import policy
from guideapp.db import new_id
from guideapp.policy.actor import Actor
from guideapp.materials.models import Material, StoredUpload
from guideapp.members.models import Member, Tag, TagGroup
from guideapp.org.models import Staff, Store
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE, RIVAL_GUIDE, RIVAL_HQ, RIVAL_MANAGER
from guideapp.tasks.models import Campaign, SopRule, Task
from guideapp.scans.models import ScanCode
from guideapp.replies.models import QuickReply
from tests.scan_factories import make_code
from guideapp.commissions.models import CommissionEntry, CommissionRule, CommissionSettlement
from tests.commission_factories import foreign_commissions
from guideapp.jobs.models import Job
from tests.job_factories import foreign_jobs
from guideapp.wechatpay.models import PayMerchant
from guideapp.wecom.models import WecomEvent
from guideapp.coupons.models import CouponRule, CouponTemplate
from tests.wechatpay_fake import FakeWeChatPay
from tests.factories import (
    make_plans,
    make_task,
    member_of,
    staff_by_phone,
    store_by_code,
    tag_group_of,
)

COLLEAGUE = "13913775684"  # another guide of SH001 (fixtures/demo/staff.json)
# The pay notify URL is public and names a merchant WeChat signs for: tests/test_wechatpay.py
# shows another tenant's merchant URL records nothing for this one.
NOT_RECORD_ROUTES = {"/api/v1/imports/<kind>", "/api/v1/wechat/pay/notify/<merchant_key>"}
# The WeCom callback URL is public and names a tenant WeCom signs for (a wrong corp's
# message is refused there): tests/test_wecom_callbacks.py.
NOT_RECORD_ROUTES.add("/api/v1/wecom/callback/<slug>")
MODELS = {
    "store": Store,
    "staff": Staff,
    "member": Member,
    "tag_group": TagGroup,
    "task": Task,
    "campaign": Campaign,
    "sop_rule": SopRule,
}
MODELS["scan_code"] = ScanCode
MODELS.update(material=Material, upload=StoredUpload)
MODELS["quick_reply"] = QuickReply
MODELS["job"] = Job
MODELS["pay_merchant"] = PayMerchant
MODELS["wecom_event"] = WecomEvent
MODELS["coupon_template"] = CouponTemplate
MODELS["coupon_rule"] = CouponRule
MODELS.update(
    commission_entry=CommissionEntry,
    commission_rule=CommissionRule,
    commission_settlement=CommissionSettlement,
)


def _body(kind_of_body, session):
    """Valid bodies, so the only reason to refuse is the record in the path."""
    tag_id = session.scalar(select(Tag.id).join(TagGroup).where(TagGroup.name == "尺码"))
    guide_id = staff_by_phone(session, GUIDE).id
    return {
        "note": {"body": "回访"},
        "tags": {"tag_ids": [tag_id]},
        "questionnaire": {"questionnaire": "入会问卷", "answers": {"运动频率": "3"}},
        "binding": {"guide_id": guide_id},
        "points": {"kind": "earn", "points": 10},
        "merge": {"merged_id": member_of(session, COLLEAGUE).id},
        "tag": {"name": "新标签"},
        "unassign": {"guide_id": None},
        "result": {"result": "done"},
        "empty": {},
        # The member is checked before the template: the 404 is the member's.
        "coupon": {"template_id": "any"},
        "bulk": {"segment": {"tiers": ["gold"]}},
        "inactive": {"active": False},
        "merchant": {
            "name": "改名",
            "mchid": "1230000109",
            "platform_keys": [FakeWeChatPay().platform_key()],
        },
    }[kind_of_body]


# route -> (kind of record in the path, [(method, body name or None), ...])
SCOPED_ROUTES = {
    "/api/v1/stores/<store_id>": ("store", [("GET", None), ("PATCH", {"phone": "021-0"})]),
    "/api/v1/stores/<store_id>/close": ("store", [("POST", None)]),
    "/api/v1/stores/<store_id>/reopen": ("store", [("POST", None)]),
    "/api/v1/staff/<staff_id>": ("staff", [("GET", None), ("PATCH", {"name": "改名"})]),
    "/api/v1/staff/<staff_id>/leave": ("staff", [("POST", None)]),
    "/api/v1/staff/<staff_id>/wechat": ("staff", [("GET", None), ("DELETE", None)]),
    "/api/v1/members/<member_id>/card": ("member", [("GET", None)]),
    "/api/v1/members/<member_id>/notes": ("member", [("POST", "note")]),
    "/api/v1/members/<member_id>/tags": ("member", [("POST", "tags")]),
    "/api/v1/members/<member_id>/tags/<tag_id>": ("member", [("DELETE", None)]),
    "/api/v1/members/<member_id>/questionnaire": ("member", [("POST", "questionnaire")]),
    "/api/v1/members/<member_id>/binding": ("member", [("POST", "binding")]),
    "/api/v1/members/<member_id>/points": ("member", [("POST", "points")]),
    "/api/v1/members/<member_id>/merge": ("member", [("POST", "merge")]),
    "/api/v1/tag-groups/<group_id>/tags": ("tag_group", [("POST", "tag")]),
    "/api/v1/tasks/<task_id>": ("task", [("GET", None)]),
    "/api/v1/tasks/<task_id>/assign": ("task", [("POST", "unassign")]),
    "/api/v1/tasks/<task_id>/targets/<member_id>/result": ("task", [("POST", "result")]),
    "/api/v1/tasks/<task_id>/complete": ("task", [("POST", "empty")]),
    "/api/v1/tasks/<task_id>/cancel": ("task", [("POST", None)]),
    "/api/v1/campaigns/<campaign_id>": ("campaign", [("GET", None)]),
    "/api/v1/campaigns/<campaign_id>/publish": ("campaign", [("POST", None)]),
    "/api/v1/campaigns/<campaign_id>/cancel": ("campaign", [("POST", None)]),
    "/api/v1/sop-rules/<rule_id>/active": ("sop_rule", [("POST", "inactive")]),
    "/api/v1/codes/<code_id>": ("scan_code", [("GET", None), ("PATCH", "inactive")]),
    "/api/v1/codes/<code_id>/qr.png": ("scan_code", [("GET", None)]),
    "/api/v1/codes/<code_id>/qr.svg": ("scan_code", [("GET", None)]),
    "/api/v1/codes/<code_id>/wxacode.png": ("scan_code", [("GET", None)]),
    "/api/v1/codes/<code_id>/stats": ("scan_code", [("GET", None)]),
    "/api/v1/wecom/codes/<code_id>/way-rule": (
        "scan_code",
        [("GET", None), ("PUT", {"daily_cap": 5})],
    ),
    "/api/v1/wecom/welcomes/<code_id>": ("scan_code", [("GET", None), ("PUT", {"text": "欢迎"})]),
    "/api/v1/wecom/events/<event_id>": ("wecom_event", [("GET", None)]),
    "/api/v1/wecom/events/<event_id>/replay": ("wecom_event", [("POST", None)]),
}
SCOPED_ROUTES.update(
    {
        "/api/v1/materials/<material_id>": (
            "material",
            [("GET", None), ("PATCH", {"title": "改"})],
        ),
        "/api/v1/materials/<material_id>/shares": ("material", [("POST", {"channel": "moments"})]),
        "/api/v1/uploads/<upload_id>": ("upload", [("GET", None)]),
    }
)
SCOPED_ROUTES.update(
    {
        "/api/v1/quick-replies/<reply_id>": (
            "quick_reply",
            [("GET", None), ("PATCH", {"title": "改"}), ("DELETE", None)],
        ),
        "/api/v1/quick-replies/<reply_id>/render": (
            "quick_reply",
            [("POST", {"member_id": "any"})],
        ),
    }
)
SCOPED_ROUTES.update(
    {
        "/api/v1/commissions/entries/<entry_id>": ("commission_entry", [("GET", None)]),
        "/api/v1/commissions/rules/<rule_id>": ("commission_rule", [("GET", None)]),
        "/api/v1/commissions/rules/<rule_id>/versions": (
            "commission_rule",
            [("POST", {"amount_fen": 1})],
        ),
        "/api/v1/commissions/settlements/<settlement_id>": (
            "commission_settlement",
            [("GET", None)],
        ),
        "/api/v1/commissions/settlements/<settlement_id>/approve": (
            "commission_settlement",
            [("POST", None)],
        ),
        "/api/v1/commissions/settlements/<settlement_id>/statements": (
            "commission_settlement",
            [("GET", None)],
        ),
        "/api/v1/commissions/settlements/<settlement_id>/export": (
            "commission_settlement",
            [("GET", None)],
        ),
        "/api/v1/commissions/settlements/<settlement_id>/exports": (
            "commission_settlement",
            [("POST", {"format": "csv"})],
        ),
    }
)


SCOPED_ROUTES.update(
    {
        "/api/v1/jobs/<job_id>": ("job", [("GET", None)]),
        "/api/v1/jobs/<job_id>/cancel": ("job", [("POST", None)]),
        "/api/v1/jobs/<job_id>/download": ("job", [("GET", None)]),
    }
)
SCOPED_ROUTES.update(
    {
        "/api/v1/coupon-templates/<template_id>": (
            "coupon_template",
            [("GET", None), ("PATCH", {"name": "改"})],
        ),
        "/api/v1/members/<member_id>/coupons": ("member", [("GET", None), ("POST", "coupon")]),
        "/api/v1/members/<member_id>/coupons/exchange": ("member", [("POST", "coupon")]),
        "/api/v1/coupon-rules/<rule_id>": (
            "coupon_rule",
            [("GET", None), ("PATCH", {"name": "改"})],
        ),
        "/api/v1/coupon-templates/<template_id>/issue": ("coupon_template", [("POST", "bulk")]),
    }
)
SCOPED_ROUTES["/api/v1/wechat/pay/merchants/<merchant_id>"] = (
    "pay_merchant",
    [("GET", None), ("PUT", "merchant")],
)


def _foreign_merchants(session, caller):
    """Merchants are HQ's alone: staff see none; each HQ only its own tenant's."""
    from guideapp.secretbox import SecretBox
    from tests.conftest import TEST_SECRETS_KEY
    from guideapp.wechatpay.service import create_merchant

    def made_by(phone, mchid):
        pay = FakeWeChatPay()
        data = {
            "name": "商户",
            "mchid": mchid,
            "appids": [],
            "apiv3_key": pay.apiv3_key,
            "platform_keys": [pay.platform_key()],
            "store_id": None,
            "terminals": [],
            "active": True,
        }
        actor = Actor.for_staff(staff_by_phone(session, phone))
        box = SecretBox(TEST_SECRETS_KEY)
        return create_merchant(session, actor=actor, box=box, data=data).id

    stride, rival = made_by(HQ, "1230000109"), made_by(RIVAL_HQ, "1230000109")
    return {RIVAL_HQ: [stride], HQ: [rival]}.get(caller, [stride, rival])


def _foreign_wecom_events(session, caller):
    """Callback events are HQ's alone (dead ones replayable): staff see none; each HQ only
    its own tenant's."""
    made = {}
    for phone in (HQ, RIVAL_HQ):
        event = WecomEvent(
            tenant_id=staff_by_phone(session, phone).tenant_id,
            key=new_id(),
            event="change_external_contact",
            change_type="add_external_contact",
            fields={"Event": "change_external_contact"},
            state="dead",
            attempts=8,
        )
        session.add(event)
        session.flush()
        made[phone] = event.id
    return {RIVAL_HQ: [made[HQ]], HQ: [made[RIVAL_HQ]]}.get(caller, list(made.values()))


def _foreign_coupon_templates(session, caller):
    """HQ templates of the other tenant; for SH001's staff also BJ001's store template."""
    from guideapp.coupons.service import create_template

    def made_by(phone):
        data = {
            "name": "券",
            "kind": "amount_off",
            "amount_off_fen": 100,
            "valid_days": 7,
            "store_ids": [],
            "region_ids": [],
            "channels": [],
        }
        actor = Actor.for_staff(staff_by_phone(session, phone))
        return create_template(session, actor=actor, data=data).id

    stride, rival = made_by(HQ), made_by(RIVAL_HQ)
    if caller in (GUIDE, MANAGER):
        bj_manager = session.scalar(
            select(Staff.phone).where(
                Staff.store_id == store_by_code(session, "BJ001").id, Staff.role == "store_manager"
            )
        )
        return [rival, made_by(bj_manager)]
    return {RIVAL_HQ: [stride], HQ: [rival]}[caller]


def _foreign_coupon_rules(session, caller):
    """Rules are HQ's alone: staff see none; each HQ only its own tenant's."""
    from guideapp.coupons.automation import create_rule

    def made_by(phone):
        actor = Actor.for_staff(staff_by_phone(session, phone))
        template_id = _foreign_coupon_templates(session, RIVAL_HQ if phone == HQ else HQ)[0]
        data = {"name": "生日券", "occasion": "birthday", "params": {}, "template_id": template_id}
        return create_rule(session, actor=actor, data=data).id

    made = {HQ: made_by(HQ), RIVAL_HQ: made_by(RIVAL_HQ)}
    return {RIVAL_HQ: [made[HQ]], HQ: [made[RIVAL_HQ]]}.get(caller, list(made.values()))


def _foreign_materials(session, caller, kind):
    """Materials aimed at another store or tenant; files of another tenant."""
    from guideapp.materials.service import create_material, store_upload
    from guideapp.storage import LocalStorage

    def made_by(phone, **data):
        actor = Actor.for_staff(staff_by_phone(session, phone))
        if kind == "upload":
            storage = LocalStorage(tempfile.mkdtemp())
            return store_upload(
                session,
                actor=actor,
                storage=storage,
                filename="a.png",
                data=b"\x89PNG\r\n\x1a\n" + phone.encode(),
            ).id
        return create_material(
            session, actor=actor, data={"kind": "text", "title": "别人的", "body": "x", **data}
        ).id

    rival = made_by(RIVAL_HQ, target={"all": True})
    if caller == RIVAL_HQ:
        return [made_by(HQ, target={"all": True})]
    if caller == HQ or kind == "upload":
        return [rival]  # files are tenant-wide content
    bj_only = made_by(HQ, target={"store_ids": [store_by_code(session, "BJ001").id]})
    return [rival, bj_only, made_by(OTHER_GUIDE, level="personal")]


def _foreign(session, caller, kind):
    """Ids of `kind` records the caller must not see: other store, other tenant."""
    bj, rival_store = store_by_code(session, "BJ001"), store_by_code(session, "SH001", "rival")
    if kind in ("material", "upload"):
        return _foreign_materials(session, caller, kind)
    if kind == "quick_reply":
        return _foreign_replies(session, caller, bj, rival_store)
    if kind == "job":
        return foreign_jobs(session, caller)
    if kind == "pay_merchant":
        return _foreign_merchants(session, caller)
    if kind == "wecom_event":
        return _foreign_wecom_events(session, caller)
    if kind == "coupon_template":
        return _foreign_coupon_templates(session, caller)
    if kind == "coupon_rule":
        return _foreign_coupon_rules(session, caller)
    if kind.startswith("commission_"):
        return foreign_commissions(session, caller, kind)
    if kind == "scan_code":
        return _foreign_codes(session, caller, bj, rival_store)
    if kind in ("task", "campaign", "sop_rule"):
        return _foreign_plans(session, caller, kind, bj, rival_store)
    stride_records = {
        "store": [bj.id],
        "staff": [staff_by_phone(session, OTHER_GUIDE).id],
        "member": [member_of(session, OTHER_GUIDE).id],
        "tag_group": [],
    }
    rival_records = {
        "store": [rival_store.id],
        "staff": [staff_by_phone(session, RIVAL_GUIDE).id],
        "member": [member_of(session, RIVAL_GUIDE).id],
        "tag_group": [tag_group_of(session, "rival").id],
    }
    if caller == RIVAL_HQ:
        sh = store_by_code(session, "SH001")
        return {
            "store": [sh.id, bj.id],
            "staff": [staff_by_phone(session, GUIDE).id],
            "member": [member_of(session, GUIDE).id],
            "tag_group": [tag_group_of(session, "stride").id],
        }[kind]
    ids = list(rival_records[kind])
    if caller in (GUIDE, MANAGER):
        ids += stride_records[kind]
    if caller == GUIDE and kind == "member":
        ids.append(member_of(session, COLLEAGUE).id)  # a colleague's member
    return ids


def _foreign_plans(session, caller, kind, bj, rival_store):
    sh = store_by_code(session, "SH001")
    stride_plans = make_plans(session, staff_by_phone(session, HQ))
    rival_plans = make_plans(session, staff_by_phone(session, RIVAL_HQ))
    if kind == "task":
        colleague_task = make_task(session, sh, assignee=staff_by_phone(session, COLLEAGUE).id)
        ids = {RIVAL_HQ: [make_task(session, sh).id], HQ: [make_task(session, rival_store).id]}.get(
            caller
        )
        if ids is None:
            ids = [make_task(session, bj).id, make_task(session, rival_store).id]
            if caller == GUIDE:
                ids.append(colleague_task.id)
        return ids
    index = 0 if kind == "campaign" else 1
    if caller == RIVAL_HQ:
        return [stride_plans[index].id]
    if caller == HQ:
        return [rival_plans[index].id]
    return [stride_plans[index].id, rival_plans[index].id]  # plans are HQ's alone


def _foreign_codes(session, caller, bj, rival_store):
    rival = make_code(session, author_phone=RIVAL_HQ, kind="store", store=rival_store).id
    beijing = make_code(session, author_phone=HQ, kind="store", store=bj).id
    lbs = make_code(session, author_phone=HQ, kind="lbs").id
    colleague = make_code(session, author_phone=HQ, kind="guide", guide_phone=COLLEAGUE).id
    return {RIVAL_HQ: [beijing, lbs], HQ: [rival], MANAGER: [rival, beijing, lbs]}.get(
        caller, [rival, beijing, lbs, colleague]
    )


def _foreign_replies(session, caller, bj, rival_store):
    """HQ's, a store's and personal replies: each caller gets the ones outside their reach."""

    def reply(store, level, store_id=None, staff_phone=None):
        owner = staff_by_phone(session, staff_phone).id if staff_phone else None
        record = QuickReply(
            tenant_id=store.tenant_id,
            level=level,
            scene="greeting",
            owner_store_id=store_id,
            owner_staff_id=owner,
            title="t",
            body="{member.name}",
            tag_ids=[],
        )
        session.add(record)
        session.flush()
        return record.id

    sh = store_by_code(session, "SH001")
    rival_hq, stride_hq = reply(rival_store, "hq"), reply(sh, "hq")
    sh_store, bj_store = reply(sh, "store", sh.id), reply(bj, "store", bj.id)
    guides_own = reply(sh, "personal", staff_phone=GUIDE)
    colleagues_own = reply(sh, "personal", staff_phone=COLLEAGUE)
    return {
        GUIDE: [rival_hq, bj_store, colleagues_own],
        MANAGER: [rival_hq, bj_store, guides_own],
        HQ: [rival_hq, guides_own],
        RIVAL_HQ: [stride_hq, sh_store],
    }[caller]


def test_every_id_route_is_covered(app):
    id_routes = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and "<" in rule.rule
    }
    missing = id_routes - set(SCOPED_ROUTES) - NOT_RECORD_ROUTES
    assert not missing, f"add scoping cases for {sorted(missing)}"


@pytest.mark.parametrize("route", sorted(SCOPED_ROUTES))
@pytest.mark.parametrize("caller", [GUIDE, MANAGER, HQ, RIVAL_HQ])
def test_foreign_records_are_404_and_unchanged(api, session, route, caller):
    kind, calls = SCOPED_ROUTES[route]
    model = MODELS[kind]
    for record_id in _foreign(session, caller, kind):
        before = _snapshot(session, model, record_id)
        url = route.split("<")[0] + record_id + route.split(">")[1]
        url = url.replace("<tag_id>", "any").replace("<member_id>", "any")
        for method, body in calls:
            body = _body(body, session) if isinstance(body, str) else body
            response = api.client.open(url, method=method, json=body, headers=api.headers(caller))
            assert response.status_code == 404, (caller, method, url, response.get_json())
            assert set(response.get_json()) >= {"code", "message"}
        session.expire_all()
        assert _snapshot(session, model, record_id) == before


@pytest.mark.parametrize(
    "caller,own_store_only",
    [
        (GUIDE, True),
        (MANAGER, True),
        (HQ, False),
        (RIVAL_HQ, False),
        (RIVAL_MANAGER, True),
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/stores",
        "/api/v1/staff",
        "/api/v1/regions",
        "/api/v1/members",
        "/api/v1/tag-groups",
        "/api/v1/tags",
    ],
)
def test_lists_hold_only_what_the_caller_may_see(api, session, caller, own_store_only, path):
    me = api.get(caller, "/api/v1/me").get_json()
    items = api.get(caller, f"{path}?limit=200").get_json()["items"]
    assert items
    tenant_store_ids = set(
        session.scalars(select(Store.id).where(Store.tenant_id == me["tenant"]["id"]))
    )
    for item in items:
        if path in ("/api/v1/stores",):
            assert item["id"] in tenant_store_ids
            assert not own_store_only or item["id"] == me["store"]["id"]
        elif path in ("/api/v1/staff", "/api/v1/members", "/api/v1/tag-groups", "/api/v1/tags"):
            assert item["store_id"] is None or item["store_id"] in tenant_store_ids
            assert not own_store_only or item["store_id"] in (None, me["store"]["id"])
        if path == "/api/v1/members":
            record = session.get(Member, item["id"])
            assert record.tenant_id == me["tenant"]["id"]
            if caller == GUIDE:
                assert item["guide_id"] in (None, me["staff"]["id"])


def _snapshot(session, model, record_id):
    record = session.get(model, record_id)
    return {c.key: getattr(record, c.key) for c in model.__table__.columns}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_policy_property_visible_iff_same_tenant_and_in_role_scope(session, data):
    """For any staff member and any store, staff or member record of either tenant."""
    everyone = session.scalars(select(Staff).order_by(Staff.id)).all()
    caller = data.draw(st.sampled_from(everyone))
    actor = Actor.for_staff(caller)
    store = data.draw(st.sampled_from(session.scalars(select(Store).order_by(Store.id)).all()))
    target = data.draw(st.sampled_from(everyone))
    member = data.draw(
        st.sampled_from(session.scalars(select(Member).order_by(Member.id).limit(300)).all())
    )

    def sees(model, record):
        return (
            session.scalar(policy.scoped_select(actor, model).where(model.id == record.id))
            is not None
        )

    same_tenant = lambda record: record.tenant_id == caller.tenant_id  # noqa: E731
    hq = caller.role == "hq_admin"
    assert sees(Store, store) == (same_tenant(store) and (hq or store.id == caller.store_id))
    assert sees(Staff, target) == (
        same_tenant(target) and (hq or target.store_id == caller.store_id)
    )
    expect_member = same_tenant(member) and (
        hq
        or (caller.role == "store_manager" and member.store_id == caller.store_id)
        or member.guide_id == caller.id
        or (member.store_id == caller.store_id and member.guide_id is None)
    )
    assert sees(Member, member) == expect_member
    for record in (target, member):
        if not same_tenant(record):
            assert not policy.can_write(actor, record, "update")


# --- ids in request bodies ---------------------------------------------------------------
# Every POST / PATCH that takes an id in its body: another store's or tenant's id gets the
# same 4xx (422 naming the field) as a made-up id, and nothing is written.

LATER = {"starts_at": "2031-01-01T02:00:00+00:00", "due_at": "2031-01-03T02:00:00+00:00"}
CAMPAIGN = {"title": "c", **LATER, "target": {"all": True}}
CALENDAR = {"day": "2031-01-01", "title": "c", "target": {"all": True}}
SOP = {"name": "r", "trigger": "member_joined", "steps": [{"days": 3, "title": "t"}]}
STAFF = {"name": "新人", "phone": "13911110000", "role": "guide", "password": "stride-guide-2026"}
TASK = {"title": "t", **LATER}
MATERIAL = {"kind": "text", "title": "t", "body": "b", "target": {"all": True}}
REPLY = {"title": "t", "body": "您好", "scene": "greeting"}
CODE = {"kind": "lbs", "channel": "receipt"}
RULE = {"name": "r", "kind": "recruit_bounty", "amount_fen": 100, "scope": "store"}
COUPON_RULE = {"name": "r", "occasion": "birthday"}
EXPIRING = {**SOP, "trigger": "coupon_expiring"}


def _own(session, what):
    """Records of the caller's own reach that a path names."""
    sh = store_by_code(session, "SH001")
    if what == "sh_task":
        return make_task(session, sh).id
    if what == "sh_member":
        return member_of(session, GUIDE).id
    if what == "colleague":
        return staff_by_phone(session, COLLEAGUE).id
    if what == "material":
        actor = Actor.for_staff(staff_by_phone(session, HQ))
        from guideapp.materials.service import create_material

        return create_material(session, actor=actor, data=dict(MATERIAL)).id
    if what == "reply":
        record = QuickReply(
            tenant_id=sh.tenant_id, level="hq", scene="greeting", title="t", body="b", tag_ids=[]
        )
        session.add(record)
        session.flush()
        return record.id
    if what == "code":
        return make_code(session, author_phone=HQ, kind="lbs").id
    raise KeyError(what)


def _foreign_body_ids(session, caller, kind):
    """Ids of `kind` outside the caller's reach: another store's and another tenant's."""
    from guideapp.materials.models import MaterialCategory
    from guideapp.replies.models import ReplyCategory
    from tests.factories import pool_members

    bj, rival = store_by_code(session, "BJ001"), store_by_code(session, "SH001", "rival")
    hq = caller == HQ
    if kind == "store":
        return [rival.id] if hq else [bj.id, rival.id]
    if kind == "region":
        return [rival.region_id]
    if kind == "guide":
        rival_guide = staff_by_phone(session, RIVAL_GUIDE).id
        return [rival_guide] if hq else [staff_by_phone(session, OTHER_GUIDE).id, rival_guide]
    if kind == "member":
        theirs = [member_of(session, RIVAL_GUIDE).id, pool_members(session, "SH001", "rival")[0].id]
        if not hq:
            theirs += [member_of(session, OTHER_GUIDE).id, pool_members(session, "BJ001")[0].id]
        if caller == GUIDE:
            theirs += [member_of(session, COLLEAGUE).id]
        return theirs
    if kind == "tag":
        bj_group = TagGroup(tenant_id=bj.tenant_id, store_id=bj.id, name=f"北京{caller}")
        session.add(bj_group)
        session.flush()
        bj_tag = Tag(tenant_id=bj.tenant_id, group_id=bj_group.id, store_id=bj.id, name="x")
        session.add(bj_tag)
        session.flush()
        rival_tag = session.scalar(
            select(Tag.id).where(Tag.group_id == tag_group_of(session, "rival").id)
        )
        return [rival_tag] if hq else [rival_tag, bj_tag.id]
    if kind in ("material", "upload"):
        return _foreign_materials(session, caller, kind)
    if kind == "coupon_template":
        return _foreign_coupon_templates(session, caller)
    if kind == "reply":
        return _foreign_replies(session, caller, bj, rival)
    if kind == "material_category":
        category = MaterialCategory(tenant_id=rival.tenant_id, name="对手")
        session.add(category)
        session.flush()
        return [category.id]
    if kind == "reply_category":
        theirs = [ReplyCategory(tenant_id=rival.tenant_id, scene="greeting", name="对手")]
        if not hq:
            theirs.append(
                ReplyCategory(tenant_id=bj.tenant_id, store_id=bj.id, scene="greeting", name="北")
            )
        session.add_all(theirs)
        session.flush()
        return [c.id for c in theirs]
    raise KeyError(kind)


def _put(body, field, value):
    """The body with `value` at the dotted `field` (a list where the field takes ids)."""
    body = json_copy(body)
    *outer, name = field.split(".")
    at = body
    for part in outer:
        at = at.setdefault(part, {})
        at.pop("all", None)
    at[name] = [value] if name.endswith("_ids") else value
    return body


def json_copy(value):
    import json

    return json.loads(json.dumps(value))


# (caller, method, path (own record in {}), base body, field, kind of id)
BODY_ID_CASES = [
    (HQ, "POST", "/api/v1/tasks", TASK, "store_id", "store"),
    (MANAGER, "POST", "/api/v1/tasks", TASK, "store_id", "store"),
    (MANAGER, "POST", "/api/v1/tasks", TASK, "assignee_ids", "guide"),
    (MANAGER, "POST", "/api/v1/tasks", TASK, "member_ids", "member"),
    (MANAGER, "POST", "/api/v1/tasks", TASK, "suggested_material_id", "material"),
    (MANAGER, "POST", "/api/v1/tasks", TASK, "suggested_reply_id", "reply"),
    (MANAGER, "POST", "/api/v1/tasks/{sh_task}/assign", {}, "guide_id", "guide"),
    (HQ, "POST", "/api/v1/tasks/{sh_task}/assign", {}, "guide_id", "guide"),
    (HQ, "POST", "/api/v1/campaigns", CAMPAIGN, "target.store_ids", "store"),
    (HQ, "POST", "/api/v1/campaigns", CAMPAIGN, "target.region_ids", "region"),
    (HQ, "POST", "/api/v1/campaigns", CAMPAIGN, "segment.tag_ids", "tag"),
    (HQ, "POST", "/api/v1/campaigns", CAMPAIGN, "suggested_material_id", "material"),
    (HQ, "POST", "/api/v1/campaigns", CAMPAIGN, "suggested_reply_id", "reply"),
    (HQ, "POST", "/api/v1/calendar", CALENDAR, "target.store_ids", "store"),
    (HQ, "POST", "/api/v1/calendar", CALENDAR, "material_id", "material"),
    (HQ, "POST", "/api/v1/calendar", CALENDAR, "reply_id", "reply"),
    (HQ, "POST", "/api/v1/sop-rules", SOP, "suggested_material_id", "material"),
    (HQ, "POST", "/api/v1/sop-rules", SOP, "suggested_reply_id", "reply"),
    (MANAGER, "POST", "/api/v1/members", {"phone": "13511110000"}, "guide_id", "guide"),
    (HQ, "POST", "/api/v1/members", {"phone": "13511110000"}, "guide_id", "guide"),
    (MANAGER, "POST", "/api/v1/members/{sh_member}/binding", {}, "guide_id", "guide"),
    (MANAGER, "POST", "/api/v1/members/{sh_member}/tags", {}, "tag_ids", "tag"),
    (GUIDE, "POST", "/api/v1/members/{sh_member}/tags", {}, "tag_ids", "tag"),
    (HQ, "POST", "/api/v1/members/{sh_member}/merge", {}, "merged_id", "member"),
    (
        MANAGER,
        "POST",
        "/api/v1/members/transfer",
        {"from_guide_id": "{colleague}"},
        "to_guide_id",
        "guide",
    ),
    (
        MANAGER,
        "POST",
        "/api/v1/members/transfer",
        {"to_guide_id": "{colleague}"},
        "from_guide_id",
        "guide",
    ),
    (
        MANAGER,
        "POST",
        "/api/v1/questionnaire-codes",
        {"questionnaire": "q", "question": "q", "answer": "a"},
        "tag_id",
        "tag",
    ),
    (
        HQ,
        "POST",
        "/api/v1/questionnaire-codes",
        {"questionnaire": "q", "question": "q", "answer": "a"},
        "tag_id",
        "tag",
    ),
    (HQ, "POST", "/api/v1/staff", STAFF, "store_id", "store"),
    (MANAGER, "POST", "/api/v1/staff", STAFF, "store_id", "store"),
    (HQ, "PATCH", "/api/v1/staff/{colleague}", {}, "store_id", "store"),
    (MANAGER, "POST", "/api/v1/staff/{colleague}/leave", {}, "transfer_to", "guide"),
    (HQ, "POST", "/api/v1/codes", {**CODE, "kind": "store"}, "store_id", "store"),
    (MANAGER, "POST", "/api/v1/codes", {**CODE, "kind": "store"}, "store_id", "store"),
    (HQ, "POST", "/api/v1/codes", {**CODE, "kind": "guide"}, "guide_id", "guide"),
    (MANAGER, "POST", "/api/v1/codes", {**CODE, "kind": "guide"}, "guide_id", "guide"),
    (HQ, "POST", "/api/v1/codes", CODE, "fallback_store_id", "store"),
    (HQ, "POST", "/api/v1/codes", CODE, "tag_ids", "tag"),
    (HQ, "PATCH", "/api/v1/codes/{code}", {}, "tag_ids", "tag"),
    (HQ, "POST", "/api/v1/materials", MATERIAL, "target.store_ids", "store"),
    (HQ, "POST", "/api/v1/materials", MATERIAL, "target.region_ids", "region"),
    (HQ, "POST", "/api/v1/materials", {**MATERIAL, "kind": "image"}, "upload_id", "upload"),
    (HQ, "POST", "/api/v1/materials", MATERIAL, "category_id", "material_category"),
    (HQ, "POST", "/api/v1/material-categories", {"name": "c"}, "parent_id", "material_category"),
    (
        GUIDE,
        "POST",
        "/api/v1/materials/{material}/shares",
        {"channel": "member"},
        "member_id",
        "member",
    ),
    (MANAGER, "POST", "/api/v1/quick-replies", REPLY, "category_id", "reply_category"),
    (MANAGER, "POST", "/api/v1/quick-replies", REPLY, "tag_ids", "tag"),
    (GUIDE, "POST", "/api/v1/quick-replies/{reply}/render", {}, "member_id", "member"),
    (MANAGER, "POST", "/api/v1/quick-replies/{reply}/render", {}, "member_id", "member"),
    (HQ, "POST", "/api/v1/commissions/rules", RULE, "scope_id", "store"),
    (HQ, "POST", "/api/v1/coupon-rules", COUPON_RULE, "template_id", "coupon_template"),
    (HQ, "POST", "/api/v1/sop-rules", EXPIRING, "params.template_id", "coupon_template"),
    (
        GUIDE,
        "POST",
        "/api/v1/members/{sh_member}/coupons/exchange",
        {},
        "template_id",
        "coupon_template",
    ),
]


def _row_counts(session):
    from guideapp.models import metadata

    session.expire_all()
    return {
        table.name: session.scalar(select(func.count()).select_from(table))
        for table in metadata.sorted_tables
        if table.name not in {"login_attempts", "auth_sessions", "idempotent_requests"}
    }


@pytest.mark.parametrize(
    "caller,method,path,base,field,kind",
    BODY_ID_CASES,
    ids=[f"{c[0][-1]}-{c[1]}-{c[2]}-{c[4]}" for c in BODY_ID_CASES],
)
def test_foreign_ids_in_bodies_are_refused_like_unknown_ones(
    api, session, caller, method, path, base, field, kind
):
    api.headers(caller)  # log in before counting rows
    own = {name: _own(session, name) for name in ("sh_task", "sh_member", "colleague")}
    if "{material}" in path:
        own["material"] = _own(session, "material")
    if "{reply}" in path:
        own["reply"] = _own(session, "reply")
    if "{code}" in path:
        own["code"] = _own(session, "code")
    url = path.format(**own)
    base = {k: v.format(**own) if isinstance(v, str) else v for k, v in base.items()}
    foreign = _foreign_body_ids(session, caller, kind)
    assert foreign
    before = _row_counts(session)
    answers = {}
    for record_id in [new_id(), *foreign]:
        response = api.client.open(
            url, method=method, json=_put(base, field, record_id), headers=api.headers(caller)
        )
        payload = response.get_json()
        errors = payload.get("errors") or {}
        errors = errors.get("json", errors)
        answers[record_id] = (response.status_code, _shape(errors))
        assert response.status_code == 422, (record_id, payload)
        assert field.split(".")[0] in errors, payload
    made_up = answers.pop(next(iter(answers)))
    assert set(answers.values()) == {made_up}
    assert _row_counts(session) == before


def _shape(errors):
    """The field names of an error payload, nested, without the messages (which name ids)."""
    if isinstance(errors, dict):
        return tuple(sorted((k, _shape(v)) for k, v in errors.items()))
    return ()


@pytest.mark.parametrize("caller", [GUIDE, MANAGER, RIVAL_GUIDE])
def test_the_unassigned_pool_is_the_own_stores_only(api, session, caller):
    """Pool members (no guide) of several stores in both tenants: a guide and a manager
    reach their own store's pool, nobody else's."""
    from tests.factories import POOL_STORES, pool_members

    me = staff_by_phone(session, caller)
    for slug, codes in POOL_STORES.items():
        for code in codes:
            for member in pool_members(session, code, slug):
                card = api.get(caller, f"/api/v1/members/{member.id}/card")
                expected = 200 if member.store_id == me.store_id else 404
                assert card.status_code == expected, (caller, slug, code)
