"""The demo tenant's commission rules: a recruit bounty, 3% of first orders and a tier."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm import Session

from guideapp.commissions.models import CommissionRule
from guideapp.db import new_id

SINCE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def load_commission_rules(session: Session, *, tenant_id: str) -> list[CommissionRule]:
    rules: list[dict[str, Any]] = [
        dict(name="招募会员奖励 ¥5/人", kind="recruit_bounty", amount_fen=500),
        dict(
            name="首单提成 3%",
            kind="order_percent",
            rate_bp=300,
            order_basis="first",
            cap_fen=50_000,
        ),
        dict(
            name="月招募阶梯奖",
            kind="tier_bonus",
            tiers=[{"recruits": 50, "bonus_fen": 2_000}, {"recruits": 200, "bonus_fen": 10_000}],
        ),
    ]
    rows = []
    for data in rules:
        rule_id = new_id()
        rows.append(
            CommissionRule(
                id=rule_id,
                rule_key=rule_id,
                version=1,
                tenant_id=tenant_id,
                scope="tenant",
                effective_from=SINCE,
                **data,
            )
        )
    session.add_all(rows)
    session.flush()
    return rows
