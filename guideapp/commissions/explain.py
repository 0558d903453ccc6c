"""Ledger entries in words a guide understands, e.g. "招募会员 张三 奖励 ¥5.00"."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.commissions.models import CommissionEntry, CommissionRule
from guideapp.commissions.rules import yuan
from guideapp.members.models import Member

MONTH_STATES = {"open": "待结算", "draft": "已结算，待总部审批", "approved": "已结算，总部已审批"}


def percent_text(rate_bp: int | None) -> str:
    """Basis points as a percent without floats: 300 -> '3%', 250 -> '2.5%'."""
    whole, rest = divmod(rate_bp or 0, 100)
    return f"{whole}%" if not rest else f"{whole}.{rest:02d}".rstrip("0") + "%"


def member_label(name: str | None, phone_tail: str | None) -> str:
    """How a guide recognises the member: the name, else the phone's last four digits
    (members recruited by a scan have no name until an order brings one)."""
    if name and name.strip():
        return name.strip()
    return f"新会员 (尾号{phone_tail})" if phone_tail else "新会员 (未留姓名)"


def sentence(entry: CommissionEntry, rule: CommissionRule | None, member_name: str) -> str:
    amount = yuan(abs(entry.amount_fen))
    who = member_name or member_label(None, None)
    if entry.kind == "bounty":
        return f"招募会员 {who} 奖励 {amount}"
    if entry.kind == "order":
        label = "首单" if rule and rule.order_basis == "first" else "订单"
        rate = percent_text(rule.rate_bp if rule else None)
        return f"会员 {who} {label} {yuan(entry.basis_fen or 0)} 提成 {rate} {amount}"
    if entry.kind == "tier":
        return f"本月招募满 {_step(entry)} 人 阶梯奖励 {amount}"
    if entry.kind == "clawback":
        return f"会员 {who} 退款 {yuan(entry.basis_fen or 0)} 扣回提成 {amount}"
    return f"会员 {who} 合并为同一人，重复奖励冲销 {amount}"


def _step(entry: CommissionEntry) -> str:
    return entry.source_id.rsplit(":", 1)[-1]


def describe(session: Session, entries: list[CommissionEntry]) -> list[dict]:
    """Entries as dicts with a Chinese `text`; two queries for the whole page."""
    rule_ids = {e.rule_id for e in entries}
    member_ids = {e.member_id for e in entries if e.member_id}
    rules = (
        {
            r.id: r
            for r in session.scalars(select(CommissionRule).where(CommissionRule.id.in_(rule_ids)))
        }
        if rule_ids
        else {}
    )
    names: dict[str | None, str] = (
        {
            mid: member_label(name, tail)
            for mid, name, tail in session.execute(
                select(Member.id, Member.name, Member.phone_tail).where(Member.id.in_(member_ids))
            )
        }
        if member_ids
        else {}
    )
    out = []
    for e in entries:
        rule = rules.get(e.rule_id)
        out.append(
            {
                "id": e.id,
                "kind": e.kind,
                "amount_fen": e.amount_fen,
                "amount": yuan(e.amount_fen),
                "text": sentence(e, rule, names.get(e.member_id, "")),
                "rule_id": e.rule_id,
                "rule_name": rule.name if rule else None,
                "rule_version": rule.version if rule else None,
                "guide_id": e.guide_id,
                "store_id": e.store_id,
                "member_id": e.member_id,
                "source_type": e.source_type,
                "source_id": e.source_id,
                "reverses_id": e.reverses_id,
                "basis_fen": e.basis_fen,
                "event_at": e.event_at,
                "accounting_month": e.accounting_month,
                "created_at": e.created_at,
            }
        )
    return out


def summary(month: str, state: str, earned: int, clawed: int, net: int) -> str:
    text = f"{month} 共获得 {yuan(earned)}"
    if clawed:
        text += f"，退款扣回 {yuan(clawed)}"
    return f"{text}，实得 {yuan(net)}（{MONTH_STATES.get(state, state)}）"
