"""Fixtures: each backend migrated once with the demo and a rival tenant; each test in a
transaction rolled back at its end (requests and services join it through SAVEPOINTs)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from guideapp import create_app, dumping
from guideapp.access import register_access_rules
from guideapp.config import PROJECT_ROOT, Config
from guideapp.db import make_engine, transaction
from guideapp.demo import DEMO_PASSWORD, load_demo
from guideapp.migrations import alembic_config
from guideapp.wiring import connect_reactions
from tests.databases import backends, scratch_database
from tests.factories import make_pool_members, make_rival_tenant
from tests.fake_wechat import shared as fake_wechat_server
from tests.fake_wecom import shared as fake_wecom_server

# Every answer the suite reads is dumped by marshmallow too and must match the plan's.
dumping.check_against_marshmallow(True)

FIXTURES = PROJECT_ROOT / "fixtures" / "demo"
WECHAT_TEST_KEY = "k8D0Cq6o0pmDqvj5NU3uuSB5c1ZD7k3sD1xWQbO8y6Q="  # a Fernet key for tests only

# Services called without an app (the demo loader, the session fixture) ask the policy too.
register_access_rules()


@dataclass
class Database:
    backend: str
    url: str
    engine: Engine


@pytest.fixture(scope="session", autouse=True)
def reactions():
    """Services called without an app (the `session` fixture) react as in production."""
    connect_reactions()


@pytest.fixture(scope="session", params=backends())
def database(request, tmp_path_factory):
    with scratch_database(request.param, tmp_path_factory) as url:
        command.upgrade(alembic_config({}, url=url), "head")
        engine = make_engine(url)
        with Session(engine) as session, transaction(session):
            load_demo(session, FIXTURES)
            make_rival_tenant(session)
            make_pool_members(session)
        yield Database(request.param, url, engine)
        engine.dispose()


@pytest.fixture
def connection(database):
    with database.engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def session(connection):
    with Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as s:
        yield s


# Each app gets a queue of its own (in one scratch SQLite file), so no test ever runs
# another test's jobs; tests/test_jobs.py also runs them on Redis.
JOBS_FILE = Path(tempfile.mkdtemp(prefix="guideapp-jobs-")) / "jobs.db"
atexit.register(shutil.rmtree, JOBS_FILE.parent, True)


TEST_SECRETS_KEY = "tGWJ3P0o6e8rZHX8eJ2p6lUvJ6a1pjQ3sV8mC0dP4kE="  # a Fernet key for tests


def make_config(database, **overrides) -> Config:
    overrides.setdefault("JOBS_URL", f"sqlite:///{JOBS_FILE}")
    overrides.setdefault("WECHAT_SECRETS_KEY", TEST_SECRETS_KEY)
    overrides.setdefault("JOBS_NAME", f"test-{uuid.uuid4().hex}")
    # WeChat is the fake in tests/fake_wechat.py, whatever the environment says.
    overrides.setdefault("WECHAT_API_BASE", fake_wechat_server().url)
    overrides.setdefault("WECHAT_OAUTH_BASE", fake_wechat_server().url)
    overrides.setdefault("WECHAT_SECRETS_KEY", WECHAT_TEST_KEY)
    overrides.setdefault("WECHAT_ENV", {})
    overrides.setdefault("WECOM_API_BASE", fake_wecom_server().url)  # tests/fake_wecom.py
    return Config(
        DATABASE_URL=database.url,
        SECRET_KEY="test-secret-key-of-at-least-32-bytes!",
        LOG_LEVEL="WARNING",
        **overrides,
    )


@pytest.fixture
def app(database, connection):
    return create_app(make_config(database), bind=connection)


@pytest.fixture
def client(app):
    return app.test_client()


class ApiClient:
    """The test client with a login remembered per phone."""

    def __init__(self, client):
        self.client = client
        self._tokens: dict[str, str] = {}

    def login(self, phone: str, password: str = DEMO_PASSWORD) -> dict:
        response = self.client.post(
            "/api/v1/auth/login", json={"phone": phone, "password": password}
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def headers(self, phone: str, **extra) -> dict:
        if phone not in self._tokens:
            self._tokens[phone] = self.login(phone)["access_token"]
        return {"Authorization": f"Bearer {self._tokens[phone]}", **extra}

    def get(self, phone, url, **kw):
        return self.client.get(url, headers=self.headers(phone), **kw)

    def post(self, phone, url, json=None, headers=None, **kw):
        return self.client.post(
            url, json=json, headers=self.headers(phone, **(headers or {})), **kw
        )

    def patch(self, phone, url, json=None, **kw):
        return self.client.patch(url, json=json, headers=self.headers(phone), **kw)


@pytest.fixture
def api(client):
    return ApiClient(client)


HQ, MANAGER, GUIDE, OTHER_GUIDE = "13800000001", "13800000002", "13800000003", "13800000004"
RIVAL_HQ, RIVAL_MANAGER, RIVAL_GUIDE = "13700000001", "13700000002", "13700000003"


@pytest.fixture
def fake_wechat():
    """The fake WeChat server, emptied for this test."""
    fake = fake_wechat_server()
    fake.reset()
    return fake


@pytest.fixture
def fake_wecom():
    """The fake WeCom server, emptied for this test."""
    fake = fake_wecom_server()
    fake.reset()
    return fake


@pytest.fixture
def wecom_corp(api, fake_wecom):
    """The demo brand's WeCom corp, on the fake and configured through the API."""
    from tests import wecom_helpers as w

    fake_wecom.add_corp(
        corp_id=w.CORP_ID,
        contact_secret=w.CONTACT_SECRET,
        agent_id=w.AGENT_ID,
        agent_secret=w.AGENT_SECRET,
    )
    w.configure(api, HQ)
    return w.Corp(fake_wecom)


# The demo brand's WeChat apps on the fake (tests/wechat_helpers.py configures them).
MP_APPID, MP_SECRET = "wx00000000000000a1", "mpsecret0000000000000000000000a1"
OA_APPID, OA_SECRET = "wx00000000000000b2", "oasecret0000000000000000000000b2"


@pytest.fixture
def wechat_apps(api, fake_wechat):
    """The demo brand has a mini-program and an official account, both on the fake."""
    fake_wechat.add_app(MP_APPID, MP_SECRET)
    fake_wechat.add_app(OA_APPID, OA_SECRET)
    response = api.client.put(
        "/api/v1/wechat/config",
        json={
            "mp_appid": MP_APPID,
            "mp_secret": MP_SECRET,
            "oa_appid": OA_APPID,
            "oa_secret": OA_SECRET,
        },
        headers=api.headers(HQ),
    )
    assert response.status_code == 200, response.get_json()
    return fake_wechat
