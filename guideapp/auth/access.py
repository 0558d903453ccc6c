"""Who may unbind a staff member's WeChat login: HQ (seeing it follows staff visibility)."""

from guideapp import policy


def register() -> None:
    policy.register_decision(
        "unbind_staff_wechat",
        lambda actor: actor.is_hq,
        refusal="Only HQ unbinds a staff member's WeChat.",
    )
