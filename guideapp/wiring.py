"""Cross-domain reactions, wired once: domains publish hook lists, this module fills them."""

from guideapp.members import binding, merge, service
from guideapp.tasks import inbox, scheduler, transfer


def _tasks_follow_members(session, *, member_ids, whole_book=False, **kwargs):
    transfer.move_open_tasks(session, member_ids=member_ids, whole_book=whole_book, **kwargs)


binding.TRANSFER_HOOKS.append(_tasks_follow_members)
merge.MERGE_HOOKS.append(transfer.merge_targets)
service.CARD_SECTIONS.append(transfer.open_tasks_section)


def _suggested_content(session, actor, tasks):
    """Inbox items carry their suggested material and quick reply: one call on the phone."""
    from guideapp.materials.service import suggestion_summaries as materials
    from guideapp.replies.service import suggestion_summaries as replies

    found_materials = materials(
        session, actor, {t.suggested_material_id for t in tasks if t.suggested_material_id}
    )
    found_replies = replies(
        session, actor, {t.suggested_reply_id for t in tasks if t.suggested_reply_id}
    )
    return {
        t.id: {
            "material": found_materials.get(t.suggested_material_id),
            "reply": found_replies.get(t.suggested_reply_id),
        }
        for t in tasks
        if t.suggested_material_id or t.suggested_reply_id
    }


inbox.SUGGESTION_EMBEDS.append(_suggested_content)


def _materials_reach_phones_on_time(session, *, tenant_id, since, now):
    from guideapp.materials.service import log_validity_edges

    log_validity_edges(session, tenant_id=tenant_id, since=since, now=now)


scheduler.TICK_HOOKS.append(_materials_reach_phones_on_time)


def _commissions_listen():
    from guideapp.commissions import events
    from guideapp.members import orders

    service.RECRUIT_HOOKS.append(events.on_recruit)
    orders.ORDER_HOOKS.append(events.on_order)
    orders.REFUND_HOOKS.append(events.on_refund)
    merge.MERGE_HOOKS.append(events.on_merge)


_commissions_listen()
