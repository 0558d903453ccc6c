"""A GET reads outside any transaction (web.py): one that writes without saying so
(Blueprint.writes_on_get) fails loudly instead of losing its write, and one that says so
commits like any write."""

import pytest
from flask.views import MethodView
from sqlalchemy import func, select

from guideapp import audit, create_app
from guideapp.audit.models import AuditEntry
from guideapp.extensions import Blueprint
from guideapp.http import current_actor, db_session
from tests.conftest import GUIDE, HQ, ApiClient, make_config

PROBE = "members.phones_viewed"  # any audited act: what the probe views write


def _app(database, connection):
    app = create_app(make_config(database), bind=connection)
    blp = Blueprint("read_only_probe", __name__, url_prefix="/api/v1/probe")

    def write():
        actor = current_actor()
        audit.record(db_session(), tenant_id=actor.tenant_id, staff_id=actor.staff_id, action=PROBE)
        return {"ok": True}

    @blp.route("/unmarked")
    class Unmarked(MethodView):
        def get(self):
            return write()

    @blp.route("/marked")
    class Marked(MethodView):
        @blp.writes_on_get
        def get(self):
            return write()

    @blp.route("/for-hq")
    class ForHq(MethodView):
        @blp.writes_on_get(when=lambda actor: actor.is_hq)
        def get(self):
            return write() if current_actor().is_hq else {"ok": True}

    @blp.route("/for-hq-but-all-write")
    class ForHqButAllWrite(MethodView):
        @blp.writes_on_get(when=lambda actor: actor.is_hq)
        def get(self):
            return write()

    app.register_blueprint(blp)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


@pytest.fixture
def probe(database, connection):
    return ApiClient(_app(database, connection).test_client())


def _probes(session) -> int:
    return session.scalar(select(func.count()).where(AuditEntry.action == PROBE))


def test_a_get_that_writes_unmarked_fails_and_keeps_nothing(probe, session, caplog):
    assert probe.get(HQ, "/api/v1/probe/unmarked").status_code == 500
    assert "mark its view Blueprint.writes_on_get" in caplog.text
    assert _probes(session) == 0


def test_a_get_marked_as_writing_commits_its_write(probe, session):
    assert probe.get(HQ, "/api/v1/probe/marked").status_code == 200
    assert _probes(session) == 1


def test_a_get_that_writes_for_some_callers_commits_theirs(probe, session):
    """`writes_on_get(when=rule)`: the callers the rule names write in a transaction; the
    others read outside one, and a write the rule did not foresee fails, never lost."""
    assert probe.get(HQ, "/api/v1/probe/for-hq").status_code == 200
    assert _probes(session) == 1
    assert probe.get(GUIDE, "/api/v1/probe/for-hq").status_code == 200
    assert probe.get(GUIDE, "/api/v1/probe/for-hq-but-all-write").status_code == 500
    assert probe.get(HQ, "/api/v1/probe/for-hq-but-all-write").status_code == 200
    assert _probes(session) == 2
