"""The public scan as a server runs it: its own engine, no test transaction, so the rate
limit's own committed transaction and the request's transaction are really two (on SQLite,
two connections contending for the one write lock)."""

from __future__ import annotations

import time

from tests.conftest import MANAGER
from tests.test_inbox_served import served  # noqa: F401  (fixture)

SCANS = "/api/v1/scans"


def test_a_retried_scan_with_an_idempotency_key_answers_at_once_and_replays(served):  # noqa: F811
    app, api = served
    client = api.client
    started = time.perf_counter()
    first = client.post(
        SCANS,
        json={"code": "stride-lbs", "lat": 31.2304, "lng": 121.4737},
        headers={"Idempotency-Key": "phone-retry-1"},
    )
    waited = time.perf_counter() - started
    assert first.status_code == 200, (first.status_code, first.get_json(), waited)
    again = client.post(
        SCANS,
        json={"code": "stride-lbs", "lat": 31.2304, "lng": 121.4737},
        headers={"Idempotency-Key": "phone-retry-1"},
    )
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["scan_id"] == first.get_json()["scan_id"]


def test_a_logged_in_caller_can_scan(served):  # noqa: F811
    """A manager trying a poster from the back office: the login is read in the request's
    transaction, after the scan has been counted in its own."""
    app, api = served
    answer = api.post(MANAGER, SCANS, json={"code": "sh001-desk"})
    assert answer.status_code == 200, answer.get_json()
