"""Sync pulls and read-only lists served from hot standbys (PostgreSQL streaming replication).

A primary and two standbys of this module's own (tests/standby.py): the app writes to the
primary and may read from a standby only once that standby has replayed everything the
read must show. Replay is paused on one standby and then both, so the two lag differently:
a phone's cursor never goes backwards, a pull never misses a change, a guide sees what they
just wrote, and a revoked login is refused however far the standbys lag.

PostgreSQL only: SQLite has no standby. Outside CI, missing tools skip with the reason; in CI
they fail.
"""

from __future__ import annotations

import subprocess

import pytest
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from guideapp import create_app
from guideapp.db import make_engine, transaction
from guideapp.demo import load_demo
from guideapp.migrations import alembic_config
from guideapp.sync import service as sync_service
from tests.conftest import FIXTURES, GUIDE, ApiClient, Database, make_config
from tests.databases import IN_CI
from tests.standby import missing_tools, start_cluster

pytestmark = pytest.mark.postgres

PULL = "/api/v1/sync/pull?schema_version=3&last_pulled_at="


@pytest.fixture(scope="module")
def cluster():
    reason = missing_tools()
    if reason:
        if IN_CI:
            pytest.fail(f"CI runs the standby test: {reason}")
        pytest.skip(reason)
    try:
        cluster = start_cluster(standbys=2)
    except subprocess.CalledProcessError as error:
        pytest.fail(f"could not start PostgreSQL: {error.stderr.decode(errors='replace')}")
    try:
        cluster.sql(cluster.primary, "CREATE DATABASE guideapp")
        url = cluster.primary.url("guideapp")
        command.upgrade(alembic_config({}, url=url), "head")
        engine = make_engine(url)
        with Session(engine) as session, transaction(session):
            load_demo(session, FIXTURES)
        for standby in cluster.standbys:
            cluster.catch_up(standby)
        cluster.database = Database("postgres", url, engine)
        yield cluster
        engine.dispose()
    finally:
        cluster.remove()


@pytest.fixture
def app(cluster):
    for standby in cluster.standbys:  # every test starts with both replaying
        cluster.resume(standby)
        cluster.catch_up(standby)
    replicas = [standby.url("guideapp") for standby in cluster.standbys]
    app = create_app(make_config(cluster.database, REPLICA_URLS=replicas))
    yield app
    for engine in [app.extensions["guideapp"]["engine"]]:
        engine.dispose()


@pytest.fixture
def api(app):
    return ApiClient(app.test_client())


def served(app) -> dict[str, float]:
    """How many replica_read requests each server answered so far (GET /metrics)."""
    text = app.test_client().get("/metrics").get_data(as_text=True)
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "guideapp_replica_reads":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["served_by"]] = sample.value
    return counts


class Watch:
    """Who answers the requests made between two looks."""

    def __init__(self, app):
        self.app = app
        self.before = served(app)

    def since(self) -> dict[str, int]:
        now = served(self.app)
        diff = {k: int(v - self.before.get(k, 0)) for k, v in now.items()}
        self.before = now
        return {k: v for k, v in diff.items() if v}


def first_pull(api) -> dict:
    body = api.get(GUIDE, PULL + "null").get_json()
    pages = [body]
    while pages[-1]["next_page"]:
        token = pages[-1]["next_page"]
        pages.append(api.get(GUIDE, f"{PULL}null&page={token}").get_json())
    return pages[0]


def a_member_of_the_guide(api) -> str:
    members = api.get(GUIDE, "/api/v1/members?limit=1").get_json()["items"]
    return members[0]["id"]


def add_note(api, member_id: str, body: str) -> str:
    response = api.post(GUIDE, f"/api/v1/members/{member_id}/notes", json={"body": body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def pull_since(api, cursor: int) -> dict:
    response = api.get(GUIDE, f"{PULL}{cursor}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def note_ids(body: dict) -> set[str]:
    return {record["id"] for record in body["changes"]["member_notes"]["updated"]}


def test_pulls_go_to_the_standbys_in_turn_when_they_are_caught_up(app, api):
    watch = Watch(app)
    cursor = first_pull(api)["timestamp"]
    for _ in range(4):
        body = pull_since(api, cursor)
        assert body["timestamp"] >= cursor
        cursor = body["timestamp"]
    answered = watch.since()
    assert set(answered) == {"standby0", "standby1"}, answered
    assert "primary" not in answered


def test_a_lagging_standby_never_answers_older_than_the_phone_has_seen(cluster, app, api):
    """standby0 stops replaying; the guide writes; only standby1 (once caught up) or the
    primary may answer, the note is in the very next pull, and the cursor only grows."""
    member_id = a_member_of_the_guide(api)
    cursor = first_pull(api)["timestamp"]
    lagging, current = cluster.standbys
    cluster.pause(lagging)
    note = add_note(api, member_id, "replica: written while standby0 lags")
    cluster.catch_up(current)

    watch = Watch(app)
    body = pull_since(api, cursor)
    assert note in note_ids(body)
    assert body["timestamp"] > cursor
    cursor = body["timestamp"]
    for _ in range(6):  # every later pull too: standby0 has not seen the note
        later = pull_since(api, cursor)
        assert later["timestamp"] >= cursor
        cursor = later["timestamp"]
    answered = watch.since()
    assert "standby0" not in answered, answered
    assert answered.get("standby1", 0) == 7, answered


def test_with_both_standbys_behind_the_primary_answers_and_nothing_is_missed(cluster, app, api):
    member_id = a_member_of_the_guide(api)
    cursor = first_pull(api)["timestamp"]
    first, second = cluster.standbys
    cluster.pause(first)
    early = add_note(api, member_id, "replica: first standby stopped before this")
    cluster.catch_up(second)
    cluster.pause(second)  # the two now lag differently: second has `early`, first has not
    late = add_note(api, member_id, "replica: both standbys stopped before this")

    watch = Watch(app)
    body = pull_since(api, cursor)
    assert {early, late} <= note_ids(body)
    assert watch.since() == {"primary": 1}

    # Replay goes on: the standbys catch up and take the reads back, with the same answer.
    for standby in cluster.standbys:
        cluster.resume(standby)
        cluster.catch_up(standby)
    again = pull_since(api, cursor)
    assert {early, late} <= note_ids(again)
    assert again["timestamp"] >= body["timestamp"]
    assert "primary" not in watch.since()


def test_a_snapshot_paged_across_standbys_stays_at_its_cursor(cluster, app, api):
    """Later pages of a first pull carry the cursor of page one; a standby behind it cannot
    serve them (it would hand out rows older than the stamp)."""
    member_id = a_member_of_the_guide(api)
    lagging, current = cluster.standbys
    cluster.pause(lagging)
    add_note(api, member_id, "replica: before the snapshot")
    cluster.catch_up(current)
    stamp = first_pull(api)["timestamp"]
    watch = Watch(app)
    for table_index in range(1, 5):  # the pages after the first table, as a phone asks
        token = sync_service._encode_page({"c": stamp, "t": table_index, "a": None})
        page = api.get(GUIDE, f"{PULL}null&page={token}").get_json()
        assert page["timestamp"] == stamp
    answered = watch.since()
    assert "standby0" not in answered and answered.get("standby1") == 4, answered


def test_a_guide_lists_what_they_just_wrote_even_when_every_standby_lags(cluster, app, api):
    for standby in cluster.standbys:
        cluster.pause(standby)
    created = api.post(
        GUIDE,
        "/api/v1/quick-replies",
        json={"title": "刚写的", "body": "您好{member.name}", "scene": "greeting"},
    )
    assert created.status_code == 201, created.get_json()
    watch = Watch(app)
    listed = api.get(GUIDE, "/api/v1/quick-replies?limit=100").get_json()["items"]
    assert created.get_json()["id"] in {reply["id"] for reply in listed}
    assert watch.since() == {"primary": 1}

    for standby in cluster.standbys:
        cluster.resume(standby)
        cluster.catch_up(standby)
    listed = api.get(GUIDE, "/api/v1/quick-replies?limit=100").get_json()["items"]
    assert created.get_json()["id"] in {reply["id"] for reply in listed}
    materials = api.get(GUIDE, "/api/v1/materials?limit=5")
    assert materials.status_code == 200
    assert "primary" not in watch.since()


def test_a_revoked_login_is_refused_however_far_the_standbys_lag(cluster, app, api):
    first_pull(api)
    for standby in cluster.standbys:
        cluster.pause(standby)
    headers = api.headers(GUIDE)
    assert api.client.post("/api/v1/auth/logout", headers=headers).status_code in (200, 204)
    refused = api.client.get(PULL + "null", headers=headers)
    assert refused.status_code == 401


def test_a_standby_that_is_down_costs_nothing_but_its_share(cluster, app, api):
    cursor = first_pull(api)["timestamp"]
    down = cluster.standbys[1]
    cluster.stop(down)
    try:
        watch = Watch(app)
        for _ in range(4):
            body = pull_since(api, cursor)
            assert body["timestamp"] >= cursor
        assert set(watch.since()) == {"standby0"}
    finally:
        cluster.start(down)
