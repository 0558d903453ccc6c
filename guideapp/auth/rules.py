"""The access rules of every model, one block per domain. Read with policy.py."""

from sqlalchemy import and_, false, or_, select, true

from guideapp.auth.policy import read_rule, visible, write_rule
from guideapp.changelog.scopes import scopes_followed
from guideapp.org.models import Brand, Region, Staff, Store, Tenant

# --- organisation -------------------------------------------------------------

STORE_PROFILE_FIELDS_FOR_MANAGERS = {
    "phone",
    "opening_hours",
    "wecom_contact_qr_url",
    "community_qr_url",
}


@read_rule(Tenant)
@read_rule(Brand)
@read_rule(Region)
def _whole_tenant(actor):
    return true()


@write_rule(Tenant)
@write_rule(Brand)
@write_rule(Region)
def _hq_only(actor, record, action):
    return actor.is_hq


@read_rule(Store)
def _stores(actor):
    return true() if actor.is_hq else Store.id == actor.store_id


@write_rule(Store)
def _store_writes(actor, store, action):
    if actor.is_hq:
        return True
    # Managers keep their own store's contact details and hours current.
    return actor.is_manager and store.id == actor.store_id and action == "update_profile"


@read_rule(Staff)
def _staff(actor):
    return true() if actor.is_hq else Staff.store_id == actor.store_id


@write_rule(Staff)
def _staff_writes(actor, staff, action):
    if actor.is_hq:
        return True
    # Managers hire, edit and sign off the guides of their own store, nobody else.
    return (
        actor.is_manager
        and staff.store_id == actor.store_id
        and staff.role == "guide"
        and action in {"create", "update", "leave"}
    )


# --- members ------------------------------------------------------------------

from guideapp.members.models import (  # noqa: E402
    Member,
    MemberNote,
    MemberTag,
    Order,
    QuestionnaireCode,
    Tag,
    TagGroup,
)


@read_rule(Member)
def _members(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return Member.store_id == actor.store_id
    # A guide sees the members bound to them and the store's unassigned pool.
    return or_(
        Member.guide_id == actor.staff_id,
        and_(Member.store_id == actor.store_id, Member.guide_id.is_(None)),
    )


@write_rule(Member)
def _member_writes(actor, member, action):
    if actor.is_hq:
        return True
    in_store = member.store_id == actor.store_id
    if actor.is_manager:
        return in_store and action in {"note", "tag", "bind", "transfer", "points", "update"}
    mine = member.guide_id == actor.staff_id
    pool = in_store and member.guide_id is None
    return (mine and action in {"note", "tag", "update"}) or (pool and action == "claim")


def _of_visible_members(model):
    def rule(actor):
        return model.member_id.in_(select(Member.id).where(visible(actor, Member)))

    return rule


for _model in (MemberNote, MemberTag, Order):
    read_rule(_model)(_of_visible_members(_model))


def _store_or_hq_level(model):
    def rule(actor):
        return (
            true()
            if actor.is_hq
            else or_(model.store_id.is_(None), model.store_id == actor.store_id)
        )

    return rule


read_rule(TagGroup)(_store_or_hq_level(TagGroup))
read_rule(Tag)(_store_or_hq_level(Tag))


@write_rule(TagGroup)
@write_rule(Tag)
def _tag_definition_writes(actor, record, action):
    if actor.is_hq:
        return True
    return actor.is_manager and record.store_id == actor.store_id


@write_rule(QuestionnaireCode)
def _codes(actor, record, action):
    return actor.is_hq


read_rule(QuestionnaireCode)(lambda actor: true())


# --- tasks ----------------------------------------------------------------------

from guideapp.tasks.models import CalendarItem, Campaign, SopRule, Task, TaskTarget  # noqa: E402


@read_rule(Task)
def _tasks(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return Task.store_id == actor.store_id
    # A guide's inbox: their own tasks and the store's unassigned (claimable) ones.
    return or_(
        Task.assignee_id == actor.staff_id,
        and_(Task.store_id == actor.store_id, Task.assignee_id.is_(None)),
    )


@write_rule(Task)
def _task_writes(actor, task, action):
    if actor.is_hq:
        return True
    if actor.is_manager:
        return task.store_id == actor.store_id
    if action == "claim":
        return task.store_id == actor.store_id and task.assignee_id is None
    return task.assignee_id == actor.staff_id and action in {"result", "complete"}


@read_rule(TaskTarget)
def _task_targets(actor):
    return TaskTarget.task_id.in_(select(Task.id).where(visible(actor, Task)))


for _model in (Campaign, SopRule, CalendarItem):
    # HQ plans; managers and guides see the plan only through the tasks it makes.
    read_rule(_model)(lambda actor: true() if actor.is_hq else false())
    write_rule(_model)(lambda actor, record, action: actor.is_hq)


# --- sync ---------------------------------------------------------------------------

from guideapp.sync.models import SyncRejection  # noqa: E402


@read_rule(SyncRejection)
def _sync_rejections(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return SyncRejection.staff_id.in_(select(Staff.id).where(Staff.store_id == actor.store_id))
    return SyncRejection.staff_id == actor.staff_id


# --- materials ----------------------------------------------------------------------

from guideapp.materials.models import (  # noqa: E402
    Material,
    MaterialAudience,
    MaterialCategory,
    Share,
    StoredUpload,
)


@read_rule(Material)
def _materials(actor):
    if actor.is_hq:
        return true()
    return Material.id.in_(
        select(MaterialAudience.material_id).where(
            MaterialAudience.scope.in_(scopes_followed(actor))
        )
    )


@write_rule(Material)
def _material_writes(actor, material, action):
    if material.level == "hq":
        return actor.is_hq
    if material.level == "store":
        return (actor.is_hq or actor.is_manager) and (
            actor.is_hq or material.owner_store_id == actor.store_id
        )
    return material.owner_staff_id == actor.staff_id


read_rule(MaterialCategory)(lambda actor: true())
write_rule(MaterialCategory)(lambda actor, record, action: actor.is_hq)
read_rule(StoredUpload)(lambda actor: true())  # tenant-wide: files are shared content


@read_rule(Share)
def _shares(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return Share.store_id == actor.store_id
    return Share.staff_id == actor.staff_id


# --- quick replies ---------------------------------------------------------------------

from guideapp.replies.models import QuickReply, ReplyCategory  # noqa: E402

read_rule(ReplyCategory)(_store_or_hq_level(ReplyCategory))


@write_rule(ReplyCategory)
def _reply_category_writes(actor, category, action):
    if category.store_id is None:
        return actor.is_hq
    return actor.is_manager and category.store_id == actor.store_id


@read_rule(QuickReply)
def _quick_replies(actor):
    # HQ's replies, the store's (every store's for HQ) and the caller's own personal ones;
    # personal replies stay private to their owner, managers and HQ included.
    store = QuickReply.level == "store"
    if not actor.is_hq:
        store = and_(store, QuickReply.owner_store_id == actor.store_id)
    mine = and_(QuickReply.level == "personal", QuickReply.owner_staff_id == actor.staff_id)
    return or_(QuickReply.level == "hq", store, mine)


@write_rule(QuickReply)
def _quick_reply_writes(actor, reply, action):
    if reply.level == "hq":
        return actor.is_hq
    if reply.level == "store":
        return actor.is_manager and reply.owner_store_id == actor.store_id
    return reply.level == "personal" and reply.owner_staff_id == actor.staff_id


# --- scans ----------------------------------------------------------------------------

from guideapp.scans.models import Scan, ScanCode  # noqa: E402


@read_rule(ScanCode)
def _scan_codes(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return ScanCode.store_id == actor.store_id
    return ScanCode.guide_id == actor.staff_id  # a guide's own personal code(s)


@write_rule(ScanCode)
def _scan_code_writes(actor, code, action):
    if actor.is_hq:
        return True
    # Managers make and keep their own store's store and guide codes; LBS codes are HQ's.
    return actor.is_manager and code.kind in ("store", "guide") and code.store_id == actor.store_id


@read_rule(Scan)
def _scans(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return Scan.store_id == actor.store_id
    return Scan.guide_id == actor.staff_id


# --- commissions --------------------------------------------------------------------

from guideapp.commissions.models import (  # noqa: E402
    CommissionEntry,
    CommissionRecruit,
    CommissionRule,
    CommissionSettlement,
    CommissionStatement,
)


def _own_or_store(model):
    # Guides see their own earnings and recruits, managers their store's, HQ the tenant's.
    def rule(actor):
        if actor.is_hq:
            return true()
        if actor.is_manager:
            return model.store_id == actor.store_id
        return model.guide_id == actor.staff_id

    return rule


read_rule(CommissionEntry)(_own_or_store(CommissionEntry))
read_rule(CommissionRecruit)(_own_or_store(CommissionRecruit))


@read_rule(CommissionRule)
def _commission_rules(actor):
    if actor.is_hq:
        return true()
    # Staff see the rules they can earn under: tenant-wide, campaign, their region or store.
    return or_(
        CommissionRule.scope.in_(("tenant", "campaign")),
        and_(CommissionRule.scope == "region", CommissionRule.scope_id == actor.region_id),
        and_(CommissionRule.scope == "store", CommissionRule.scope_id == actor.store_id),
    )


@read_rule(CommissionStatement)
def _commission_statements(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return CommissionStatement.store_id == actor.store_id
    return and_(
        CommissionStatement.level == "guide", CommissionStatement.subject_id == actor.staff_id
    )


# Only HQ writes rules and settles; settlements are HQ's to read (staff read statements).
read_rule(CommissionSettlement)(lambda actor: true() if actor.is_hq else false())
for _model in (CommissionRule, CommissionSettlement):
    write_rule(_model)(lambda actor, record, action: actor.is_hq)


# --- jobs -------------------------------------------------------------------------------
# Registered from the jobs package's own module (the lead rewires this with the policy split).

from guideapp.jobs import access as jobs_access  # noqa: E402

jobs_access.register(read_rule, write_rule)
