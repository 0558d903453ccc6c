"""Every domain's access rules, registered with the policy in one visible place.

`guideapp.policy` imports no domain: each domain keeps its rules in its own
`access.py` with a `register()`, and this function calls them all. create_app calls it
(and so every `flask ...` command), the tests' conftest calls it; calling it again
changes nothing. Until it has run the policy denies everything.
"""

from __future__ import annotations


def register_access_rules() -> None:
    from guideapp.audit import access as audit
    from guideapp.auth import access as auth
    from guideapp.commissions import access as commissions
    from guideapp.coupons import access as coupons
    from guideapp.jobs import access as jobs
    from guideapp.materials import access as materials
    from guideapp.members import access as members
    from guideapp.org import access as org
    from guideapp.replies import access as replies
    from guideapp.scans import access as scans
    from guideapp.sync import access as sync
    from guideapp.tasks import access as tasks
    from guideapp.wechat import access as wechat
    from guideapp.wechatpay import access as wechatpay
    from guideapp.wecom import access as wecom

    for domain in (
        org,
        members,
        tasks,
        materials,
        replies,
        scans,
        commissions,
        coupons,
        sync,
        jobs,
        wechat,
        wechatpay,
        wecom,
        auth,
        audit,
    ):
        domain.register()
