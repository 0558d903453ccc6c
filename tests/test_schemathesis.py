"""The committed OpenAPI document tells the truth: schemathesis drives every operation of
api_spec/openapi.json through the app (WSGI, in process) as a guide, a manager, HQ and
anonymous, with valid and invalid inputs, and every answer must be documented (status code,
content type, body schema) and never a server error.

Bounded for CI: a few examples per operation and role, deterministic (derandomized), no
deadline. Path ids are drawn from records the role can see as well as made up, so reads and
writes reach real rows, not only 404s.
"""

from __future__ import annotations

import functools
import time
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from guideapp import create_app
from guideapp.config import PROJECT_ROOT
from tests.conftest import GUIDE, HQ, MANAGER, make_config

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Examples per operation and role (valid and invalid, made-up and known ids together):
# anonymous callers are refused before anything is read, so two tell enough.
EXAMPLES = {"anonymous": 2, "guide": 6, "manager": 6, "hq": 6}

CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {
            # Hostile strings included: NUL bytes and any code point (lone surrogates
            # too) must get a 4xx, never a 500 (guideapp/untrusted.py).
            "allow-x00": True,
        }
    }
)
SCHEMA = schemathesis.openapi.from_path(PROJECT_ROOT / "api_spec" / "openapi.json", config=CONFIG)
OPERATIONS = sorted(
    (result.ok() for result in SCHEMA.get_all_operations()),
    # Logging out revokes the role's session: last, with a login of its own.
    key=lambda op: (op.label == "POST /api/v1/auth/logout", op.label),
)
ROLES = {"anonymous": None, "guide": GUIDE, "manager": MANAGER, "hq": HQ}


@pytest.fixture(scope="module")
def shared_app(database):
    """One app and one rolled-back transaction for the whole module: the operations run
    one after another against the demo data (and what earlier examples wrote)."""
    with database.engine.connect() as connection:
        outer = connection.begin()
        yield create_app(make_config(database), bind=connection)
        outer.rollback()


@pytest.fixture(scope="module")
def known_ids(shared_app):
    """Ids of records each role can see, per path parameter name."""
    from guideapp.web import db_session

    with shared_app.test_request_context():
        return _known_ids(db_session())


@pytest.fixture(scope="module")
def timings():
    spent: dict[str, float] = {}
    yield spent
    total = sum(spent.values())
    slowest = sorted(spent.items(), key=lambda kv: -kv[1])[:5]
    print(f"\nschemathesis: {len(spent)} operation/role/backend runs in {total:.1f} s;")
    print(f"slowest: {slowest}")


def _token(app, phone: str) -> str:
    """A login session and its access token, made directly: logging in over HTTP costs an
    Argon2 check (seconds on a loaded CI machine) and counts towards the login throttle."""
    from guideapp.auth.models import AuthSession
    from guideapp.auth.tokens import hash_refresh_token, issue_access_token, new_refresh_token
    from guideapp.db import commit, utcnow
    from guideapp.org.models import Staff
    from guideapp.web import db_session

    with app.test_request_context():
        session = db_session()
        staff = session.scalar(select(Staff).where(Staff.phone == phone))
        auth = AuthSession(
            tenant_id=staff.tenant_id,
            staff_id=staff.id,
            refresh_token_hash=hash_refresh_token(new_refresh_token()),
            expires_at=utcnow() + timedelta(days=1),
        )
        session.add(auth)
        commit(session)
        return issue_access_token(
            secret=app.config["SECRET_KEY"],
            staff_id=staff.id,
            tenant_id=staff.tenant_id,
            session_id=auth.id,
            now=utcnow(),
            ttl_seconds=3600,
        )


@pytest.fixture(scope="module")
def tokens(shared_app):
    return {role: _token(shared_app, phone) for role, phone in ROLES.items() if phone}


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_operation_answers_as_documented(
    database, shared_app, tokens, known_ids, timings, operation, role
):
    strategy = _strategy(operation, tuple(sorted(_known_path_ids(operation, known_ids).items())))
    has_inputs = bool(
        operation.path_parameters or operation.query or operation.headers or operation.body
    )

    def headers() -> dict:
        if ROLES[role] is None:
            return {}
        token = tokens[role]
        if operation.label == "POST /api/v1/auth/logout":
            token = _token(shared_app, ROLES[role])  # each example logs a session out
        return {"Authorization": f"Bearer {token}"}

    @settings(
        max_examples=EXAMPLES[role] if has_inputs else 1,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        response = case.call(app=shared_app, headers=headers())
        case.validate_response(response, checks=CHECKS)

    started = time.perf_counter()
    run()
    timings[f"{operation.label} as {role} on {database.backend}"] = time.perf_counter() - started


@functools.cache
def _strategy(operation, path_ids: tuple):
    """Valid and invalid cases, with made-up path ids and, where known, real ones."""
    strategies = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    if path_ids:
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters=dict(path_ids))
            for mode in GenerationMode
        ]
    return st.one_of(strategies)


def _path_parameter_names(operation) -> list[str]:
    return [p.name for p in operation.path_parameters]


def _known_ids(session) -> dict:
    """A record per path parameter, in the guide's store (SH001) where it has one: visible
    to the guide, the manager and HQ; ids of the other tenant are left to the scoping tests."""
    from guideapp.commissions.models import CommissionEntry, CommissionRule, CommissionSettlement
    from guideapp.materials.models import Material, StoredUpload
    from guideapp.members.models import Member, Tag, TagGroup
    from guideapp.org.models import Staff
    from guideapp.replies.models import QuickReply
    from guideapp.scans.models import ScanCode
    from guideapp.tasks.models import Campaign, SopRule, Task

    guide = session.scalar(select(Staff).where(Staff.phone == GUIDE))

    def first_id(model, *where):
        return session.scalar(
            select(model.id).where(model.tenant_id == guide.tenant_id, *where).limit(1)
        )

    return {
        "store_id": guide.store_id,
        "staff_id": guide.id,
        "member_id": first_id(Member, Member.guide_id == guide.id),
        "tag_id": first_id(Tag),
        "group_id": first_id(TagGroup),
        "task_id": first_id(Task, Task.store_id == guide.store_id),
        "campaign_id": first_id(Campaign),
        "rule_id": first_id(CommissionRule),
        "sop_rule_id": first_id(SopRule),
        "material_id": first_id(Material),
        "upload_id": first_id(StoredUpload),
        "reply_id": first_id(QuickReply),
        "code_id": first_id(ScanCode),
        "entry_id": first_id(CommissionEntry, CommissionEntry.guide_id == guide.id),
        "settlement_id": first_id(CommissionSettlement),
        "kind": "members",
    }


def _known_path_ids(operation, known_ids: dict) -> dict:
    ids = {}
    for name in _path_parameter_names(operation):
        key = "sop_rule_id" if name == "rule_id" and "/sop-rules/" in operation.path else name
        if known_ids.get(key) is None:
            return {}
        ids[name] = known_ids[key]
    return ids
