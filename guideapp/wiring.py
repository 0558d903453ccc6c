"""Cross-domain reactions, wired once: domains publish hook lists, this module fills them."""
from guideapp.members import binding, merge, service
from guideapp.tasks import scheduler, transfer


def _tasks_follow_members(session, *, member_ids, whole_book=False, **kwargs):
    transfer.move_open_tasks(session, member_ids=member_ids, whole_book=whole_book, **kwargs)


binding.TRANSFER_HOOKS.append(_tasks_follow_members)
merge.MERGE_HOOKS.append(transfer.merge_targets)
service.CARD_SECTIONS.append(transfer.open_tasks_section)


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
