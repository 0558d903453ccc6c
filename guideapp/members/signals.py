"""What the members domain announces; other domains react (connected in guideapp/wiring.py).

Every signal is sent with the SQLAlchemy session as its sender: receivers work in the same
unit of work (they flush, never commit) and log their own replicated changes. Receivers
must not depend on the order in which they are called.

Two signals ask for a value back: `send()` returns `[(receiver, value), ...]` and the
sender merges the values (`members_merged`: moved counts; `member_card_requested`: card
sections). The others are plain announcements whose return values are ignored.
"""

from __future__ import annotations

from blinker import Namespace

members = Namespace()

member_recruited = members.signal(
    "member-recruited",
    doc="A guide recruited a new member (registration in store, a scan of a code).\n"
    "kwargs: member, guide (Staff), source ('registration' | 'scan'), "
    "campaign_id=None, at=None.",
)
members_recruited = members.signal(
    "members-recruited",
    doc="A batch of members was created bound to a guide (an import): `member_recruited` for "
    "each, in order, booked set-based.\n"
    "kwargs: tenant_id, recruits (list of (member_id, guide_id, at); at None: when bound), "
    "source ('import'), campaign_id=None.",
)
members_transferred = members.signal(
    "members-transferred",
    doc="Members moved from one guide to another in one set-based step.\n"
    "kwargs: tenant_id, member_ids (list), from_guide, to_guide (Staff), now, whole_book "
    "(True when every member of from_guide moved).",
)
members_merged = members.signal(
    "members-merged",
    doc="`merged` was merged into `survivor`; its own rows already moved.\n"
    "kwargs: survivor, merged (Member). Receivers return a dict of moved counts "
    "(kept in the merge record).",
)
orders_recorded = members.signal(
    "orders-recorded",
    doc="New orders were recorded: one by POST /orders, a batch by an import.\n"
    "kwargs: tenant_id, order_ids (list, in the order they were recorded).",
)
refunds_recorded = members.signal(
    "refunds-recorded",
    doc="New refunds were recorded (orders.refunded_fen already includes them): one by "
    "POST /orders/refunds, a batch by an import.\n"
    "kwargs: tenant_id, refund_ids (list, in the order they were recorded).",
)
member_cards_moved = members.signal(
    "member-cards-moved",
    doc="Members' cards moved between phones (a rebinding, a transfer, the merge into a "
    "survivor); notes, tags and orders are logged already: rows other domains replicate "
    "with a member follow the same way.\n"
    "kwargs: tenant_id, member_ids (a list, or a SELECT of member ids), scopes (the cards' "
    "old and new scopes: log the rows in each).",
)
member_card_requested = members.signal(
    "member-card-requested",
    doc="The member card is being assembled. kwargs: actor, member (read only: a record of "
    "the member's columns, or the loaded Member). Receivers return a dict of extra card "
    "sections (e.g. {'open_tasks': [...]}).",
)
