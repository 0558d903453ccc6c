"""Cross-domain reactions, wired once: domains publish hook lists, this module fills them."""
from guideapp.members import binding, merge, service
from guideapp.tasks import transfer


def _tasks_follow_members(session, *, member_ids, whole_book=False, **kwargs):
    transfer.move_open_tasks(session, member_ids=member_ids, whole_book=whole_book, **kwargs)


binding.TRANSFER_HOOKS.append(_tasks_follow_members)
merge.MERGE_HOOKS.append(transfer.merge_targets)
service.CARD_SECTIONS.append(transfer.open_tasks_section)
