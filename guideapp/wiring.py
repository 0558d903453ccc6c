"""Cross-domain reactions, all in one place: which domain reacts to which signal.

Domains declare the signals they send (`guideapp/<domain>/signals.py`, blinker) and know
nothing of who listens; `connect_reactions()` connects the receivers. It is called by
`create_app` (web, `flask --app wsgi ...` commands), by `guideapp.cli.register_cli`, and
by whatever runs services without an app (tests/conftest.py, bench/). Importing this
module connects nothing.

| signal (sender: the session)           | receivers                                          |
|----------------------------------------|----------------------------------------------------|
| org.staff_signed_off                   | auth.service.end_logins,                           |
|                                        | auth.wechat_login.release_on_leaving,              |
|                                        | members.binding.hand_over_book (with a successor), |
|                                        | wecom.contact_ways.on_staff_signed_off             |
| org.staff_password_changed             | auth.service.end_logins,                           |
|                                        | auth.service.clear_failed_logins                   |
| members.member_recruited               | commissions.recruits.on_recruit                    |
| members.members_recruited              | commissions.recruits.on_members_recruited          |
| members.members_transferred            | tasks.transfer.move_open_tasks,                    |
|                                        | wecom.transfers.on_members_transferred             |
| members.members_merged  -> counts      | tasks.transfer.merge_targets,                      |
|                                        | commissions.events.on_merge,                       |
|                                        | coupons.wallets.merge_wallets                      |
| members.member_cards_moved             | coupons.wallets.follow_cards                       |
| members.orders_recorded                | commissions.events.on_orders_recorded,             |
|                                        | coupons.redemption.on_orders_recorded,             |
|                                        | coupons.automation.on_orders_recorded              |
| members.refunds_recorded               | commissions.events.on_refunds_recorded,            |
|                                        | coupons.redemption.on_refunds_recorded             |
| members.member_card_requested -> dict  | tasks.transfer.open_tasks_section,                 |
|                                        | coupons.service.card_section                       |
| tasks.scheduler_ticked                 | materials.service.log_validity_edges,              |
|                                        | wecom.contact_ways.on_scheduler_tick,              |
|                                        | coupons.wallets.expire_due,                        |
|                                        | coupons.occasions.on_scheduler_tick                |
| scans.code_changed                     | wecom.contact_ways.on_code_changed                 |
| scans.scan_resolved -> dict            | wecom.contact_ways.on_scan_resolved,               |
|                                        | coupons.from_scans.on_scan_resolved                |
| tasks.inbox_suggestions_requested      | suggested_content (materials + replies, below)     |

"-> value": the sender collects the receivers' return values from `send()`.
"""

from __future__ import annotations


def connect_reactions() -> None:
    """Connect every cross-domain receiver. Idempotent: connecting again changes nothing
    (blinker keys receivers by identity; they are module-level functions, held strongly)."""
    from guideapp.auth.service import clear_failed_logins, end_logins
    from guideapp.auth.wechat_login import release_on_leaving
    from guideapp.commissions import events as commissions
    from guideapp.commissions import recruits
    from guideapp.coupons import from_scans as coupon_scans
    from guideapp.coupons import automation as coupon_rules
    from guideapp.coupons import occasions as coupon_occasions
    from guideapp.coupons import redemption as coupon_redemption
    from guideapp.coupons import service as coupons
    from guideapp.coupons import wallets as coupon_wallets
    from guideapp.materials.service import log_validity_edges
    from guideapp.members import signals as members
    from guideapp.members.binding import hand_over_book
    from guideapp.org import signals as org
    from guideapp.scans import signals as scans
    from guideapp.tasks import signals as tasks
    from guideapp.tasks import transfer
    from guideapp.wecom import contact_ways
    from guideapp.wecom import transfers as wecom_transfers

    for signal, receiver in (
        (org.staff_signed_off, end_logins),
        (org.staff_signed_off, release_on_leaving),
        (org.staff_signed_off, hand_over_book),
        (org.staff_password_changed, end_logins),
        (org.staff_password_changed, clear_failed_logins),
        (members.member_recruited, recruits.on_recruit),
        (members.members_recruited, recruits.on_members_recruited),
        (members.members_transferred, transfer.move_open_tasks),
        (members.members_transferred, wecom_transfers.on_members_transferred),
        (members.members_merged, transfer.merge_targets),
        (members.members_merged, commissions.on_merge),
        (members.members_merged, coupon_wallets.merge_wallets),
        (members.member_cards_moved, coupon_wallets.follow_cards),
        (members.orders_recorded, commissions.on_orders_recorded),
        (members.refunds_recorded, commissions.on_refunds_recorded),
        (members.orders_recorded, coupon_redemption.on_orders_recorded),
        (members.refunds_recorded, coupon_redemption.on_refunds_recorded),
        (members.orders_recorded, coupon_rules.on_orders_recorded),
        (tasks.scheduler_ticked, coupon_occasions.on_scheduler_tick),
        (members.member_card_requested, coupons.card_section),
        (members.member_card_requested, transfer.open_tasks_section),
        (tasks.scheduler_ticked, log_validity_edges),
        (tasks.inbox_suggestions_requested, suggested_content),
        (tasks.scheduler_ticked, contact_ways.on_scheduler_tick),
        (scans.code_changed, contact_ways.on_code_changed),
        (scans.scan_resolved, contact_ways.on_scan_resolved),
        (scans.scan_resolved, coupon_scans.on_scan_resolved),
        (tasks.scheduler_ticked, coupon_wallets.expire_due),
        (org.staff_signed_off, contact_ways.on_staff_signed_off),
    ):
        signal.connect(receiver, weak=False)


def suggested_content(session, *, actor, tasks) -> dict:
    """Inbox items carry their suggested material and quick reply: one call on the phone.

    Lives here, not in a domain: it joins two content domains (materials, replies) for a
    third (tasks)."""
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
