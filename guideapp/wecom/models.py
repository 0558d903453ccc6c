"""A tenant's WeCom corp (secrets sealed) and the callback events WeCom sent it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, new_id, tenant_column, tenant_fk, utcnow

EVENT_STATES = ("pending", "done", "ignored", "dead")


class WecomConfig(Base):
    """One row per tenant. Sealed columns hold Fernet tokens (guideapp/secretbox.py): the
    customer-contact secret, the app's secret, the callback token and EncodingAESKey."""

    __tablename__ = "wecom_configs"
    __table_args__ = (
        # A corp is one brand's: its callbacks name it, and it names the tenant.
        Index("uq_wecom_configs_corp_id", "corp_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), unique=True)
    corp_id: Mapped[str | None] = mapped_column(String(32))
    contact_secret: Mapped[str | None] = mapped_column(Text)  # 客户联系 secret
    agent_id: Mapped[int | None]
    agent_secret: Mapped[str | None] = mapped_column(Text)
    callback_token: Mapped[str | None] = mapped_column(Text)
    callback_aes_key: Mapped[str | None] = mapped_column(Text)  # EncodingAESKey
    updated_by: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WecomEvent(Base):
    """A callback as WeCom sent it, stored before it is answered: the durable inbox the
    event worker processes (events.py). `key` is a digest of the event's own fields, so a
    WeCom retry (the same message again) is recognised, while two customers adding one
    guide in the same second are two events."""

    __tablename__ = "wecom_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key"),
        CheckConstraint("state IN ('pending', 'done', 'ignored', 'dead')", name="state"),
        Index("ix_wecom_events_due", "tenant_id", "state", "next_attempt_at"),
        Index("ix_wecom_events_received", "tenant_id", "received_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    key: Mapped[str] = mapped_column(String(64))
    # Event / ChangeType as WeCom names them (change_external_contact / add_external_contact).
    event: Mapped[str] = mapped_column(String(64))
    change_type: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[dict] = mapped_column(JSON)  # the decrypted XML's fields
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    error: Mapped[str | None] = mapped_column(Text)  # the last failure, for people
    error_detail: Mapped[str | None] = mapped_column(Text)  # its traceback: server-side only
    result: Mapped[dict | None] = mapped_column(JSON)  # what processing did
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class WecomContactWay(Base):
    """A WeCom "contact me" way (externalcontact/add_contact_way) of one of our codes, or
    of one guide (the way an LBS code shows once it has routed to that guide). `state`
    (WeCom allows 30 characters) comes back in the add_external_contact callback and names
    this row, so the customer is attributed to the code and guide it was scanned for."""

    __tablename__ = "wecom_contact_ways"
    __table_args__ = (
        UniqueConstraint("tenant_id", "state"),
        tenant_fk("code_id", "scan_codes"),
        tenant_fk("guide_id", "staff"),
        Index("ix_wecom_contact_ways_code", "code_id"),
        Index("ix_wecom_contact_ways_guide", "guide_id"),
        Index("ix_wecom_contact_ways_due", "tenant_id", "sync_due_at"),
        # One way per code, and one own way per guide: concurrent first scans make one.
        Index("uq_wecom_contact_ways_code", "tenant_id", "code_id", unique=True),
        Index(
            "uq_wecom_contact_ways_guide_own",
            "tenant_id",
            "guide_id",
            unique=True,
            sqlite_where=text("code_id IS NULL"),
            postgresql_where=text("code_id IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    state: Mapped[str] = mapped_column(String(30))
    code_id: Mapped[str | None] = mapped_column(String(32))  # None: a guide's own way
    guide_id: Mapped[str | None] = mapped_column(String(32))  # a single-guide way's guide
    kind: Mapped[str] = mapped_column(String(10), default="single")  # single / multi (type 1/2)
    userids: Mapped[list] = mapped_column(JSON, default=list)  # the WeCom users it names now
    config_id: Mapped[str | None] = mapped_column(String(64))  # None until WeCom made it
    qr_code: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    retired_at: Mapped[datetime | None]  # deleted in WeCom (del_contact_way)
    # In step with WeCom (contact_ways.py): due for a sync from this time (None: in step),
    # how many syncs in a row WeCom was unavailable for, and why WeCom last refused it.
    sync_due_at: Mapped[datetime | None]
    sync_attempts: Mapped[int] = mapped_column(default=0)
    synced_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_errcode: Mapped[int | None]


class WecomWayRule(Base):
    """How a store code's multi-user way hands out customers: which of the store's guides it
    names (none listed: every active guide of the store with a WeCom user id), how many
    customers each may receive through it per local day, and who takes over when every
    named guide is capped or off duty."""

    __tablename__ = "wecom_way_rules"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code_id"),
        tenant_fk("code_id", "scan_codes"),
        tenant_fk("backup_guide_id", "staff"),
        tenant_fk("updated_by", "staff"),
        CheckConstraint("daily_cap IS NULL OR daily_cap > 0", name="daily_cap"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    code_id: Mapped[str] = mapped_column(String(32))
    guide_ids: Mapped[list] = mapped_column(JSON, default=list)
    daily_cap: Mapped[int | None]  # None: no cap
    backup_guide_id: Mapped[str | None] = mapped_column(String(32))
    updated_by: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WecomContact(Base):
    """A customer in a guide's WeCom contacts (the follow relationship): who, through which
    way, since when, and how it ended. The member also holds the identity
    `wecom:<corp id>` = external_userid (member_identities), which finds them again."""

    __tablename__ = "wecom_contacts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "userid", "external_userid"),
        CheckConstraint(
            "status IN ('active', 'deleted_by_guide', 'deleted_by_customer', 'transferred')",
            name="status",
        ),
        tenant_fk("member_id", "members"),
        tenant_fk("guide_id", "staff"),
        tenant_fk("contact_way_id", "wecom_contact_ways"),
        Index("ix_wecom_contacts_external", "tenant_id", "external_userid"),
        Index("ix_wecom_contacts_member", "member_id"),
        Index("ix_wecom_contacts_guide", "guide_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    member_id: Mapped[str] = mapped_column(String(32))
    guide_id: Mapped[str | None] = mapped_column(String(32))  # None: a user id we don't map
    userid: Mapped[str] = mapped_column(String(64))  # the employee's WeCom user id
    external_userid: Mapped[str] = mapped_column(String(64))
    contact_way_id: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str | None] = mapped_column(String(30))  # as WeCom sent it
    status: Mapped[str] = mapped_column(String(24), default="active")
    remark: Mapped[str | None] = mapped_column(String(100))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


TRANSFER_STATES = ("pending", "waiting", "succeeded", "failed")


class WecomTransfer(Base):
    """One customer handed from one guide's WeCom to another's (在职继承 / 离职继承), kept in
    step with our books (guideapp/wecom/transfers.py): `pending` until WeCom accepted the
    request, `waiting` for WeCom's takeover (24 h, or the customer's answer), then
    `succeeded` or `failed` with WeCom's reason, and the member went back in our books."""

    __tablename__ = "wecom_transfers"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'waiting', 'succeeded', 'failed')", name="state"),
        CheckConstraint("kind IS NULL OR kind IN ('onjob', 'resigned')", name="kind"),
        tenant_fk("member_id", "members"),
        tenant_fk("from_guide_id", "staff"),
        tenant_fk("to_guide_id", "staff"),
        tenant_fk("by_staff_id", "staff"),
        tenant_fk("from_store_id", "stores"),
        tenant_fk("to_store_id", "stores"),
        tenant_fk("contact_id", "wecom_contacts"),
        # The job's two questions: what is due to be sent, what is still waiting.
        Index("ix_wecom_transfers_due", "tenant_id", "state", "next_attempt_at"),
        # transfer_fail names the customer and the takeover member.
        Index("ix_wecom_transfers_customer", "tenant_id", "external_userid", "state"),
        Index("ix_wecom_transfers_member", "member_id"),
        Index("ix_wecom_transfers_requested", "tenant_id", "requested_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    member_id: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[str] = mapped_column(String(32))  # the handover guide's relationship
    external_userid: Mapped[str] = mapped_column(String(64))
    handover_userid: Mapped[str] = mapped_column(String(64))
    takeover_userid: Mapped[str | None] = mapped_column(String(64))  # None: not in WeCom
    from_guide_id: Mapped[str | None] = mapped_column(String(32))
    to_guide_id: Mapped[str] = mapped_column(String(32))
    # Managers see the transfers out of and into their store.
    from_store_id: Mapped[str | None] = mapped_column(String(32))
    to_store_id: Mapped[str | None] = mapped_column(String(32))
    # onjob: externalcontact/transfer_customer; resigned: .../resigned/transfer_customer.
    # Decided when sent, from whether the handover guide has left by then.
    kind: Mapped[str | None] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10), default="pending")
    # Why it failed: WeCom's words (customer_refused, customer_limit_exceed, no_record)
    # or `errcode <n>` for a customer WeCom would not start; `error` says it for people.
    reason: Mapped[str | None] = mapped_column(String(40))
    errcode: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)  # sends WeCom could not take (busy)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    by_staff_id: Mapped[str | None] = mapped_column(String(32))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    takeover_at: Mapped[datetime | None]  # WeCom's takeover_time: expected, then actual
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WecomWelcome(Base):
    """The welcome message (欢迎语) a code's new WeCom customers get, sent with the add
    event's welcome_code within its 20 s: a text and, optionally, a library material as a
    link card. HQ sets one per code; a code without one sends none (WeCom's own welcome
    configured in its admin console, if any, applies then)."""

    __tablename__ = "wecom_welcomes"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code_id"),
        tenant_fk("code_id", "scan_codes"),
        tenant_fk("material_id", "materials"),
        tenant_fk("updated_by", "staff"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    code_id: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    material_id: Mapped[str | None] = mapped_column(String(32))
    updated_by: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


ALERT_KINDS = ("deleted_by_guide",)


class WecomAlert(Base):
    """A risk the store manager and HQ should see: a guide deleted a customer from their
    WeCom contacts (del_external_contact). One per event: a replay adds nothing."""

    __tablename__ = "wecom_alerts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event_id"),
        tenant_fk("event_id", "wecom_events"),
        CheckConstraint("kind IN ('deleted_by_guide')", name="kind"),
        tenant_fk("store_id", "stores"),
        tenant_fk("guide_id", "staff"),
        tenant_fk("member_id", "members"),
        Index("ix_wecom_alerts_tenant_happened", "tenant_id", "happened_at", "id"),
        Index("ix_wecom_alerts_store_happened", "store_id", "happened_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    event_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(24))
    store_id: Mapped[str | None] = mapped_column(String(32))  # the guide's store
    guide_id: Mapped[str | None] = mapped_column(String(32))  # None: a user id we don't map
    member_id: Mapped[str | None] = mapped_column(String(32))
    userid: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    customer_name: Mapped[str] = mapped_column(String(60), default="")
    happened_at: Mapped[datetime]  # the event's CreateTime
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
