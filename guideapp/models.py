"""Every model module, imported once so Base.metadata is complete (alembic, tests)."""

from guideapp.audit import models as audit_models  # noqa: F401
from guideapp.auth import models as auth_models  # noqa: F401
from guideapp.changelog import models as changelog_models  # noqa: F401
from guideapp.commissions import models as commissions_models  # noqa: F401
from guideapp.coupons import models as coupons_models  # noqa: F401
from guideapp.db import Base
from guideapp.idempotency import models as idempotency_models  # noqa: F401
from guideapp.jobs import models as jobs_models  # noqa: F401
from guideapp.materials import models as materials_models  # noqa: F401
from guideapp.members import models as members_models  # noqa: F401
from guideapp.org import models as org_models  # noqa: F401
from guideapp.scans import models as scans_models  # noqa: F401
from guideapp.tasks import models as tasks_models  # noqa: F401
from guideapp.replies import models as replies_models  # noqa: F401
from guideapp.wechatpay import models as wechatpay_models  # noqa: F401
from guideapp.sync import models as sync_models  # noqa: F401
from guideapp.wechat import models as wechat_models  # noqa: F401
from guideapp.wecom import models as wecom_models  # noqa: F401

metadata = Base.metadata
