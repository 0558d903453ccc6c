"""The day `make load` plays (a locustfile; bench/load.py starts it): guides, consumers, HQ,
managers, and a bare Flask endpoint as the floor, against a list of app-server URLs.

Every request picks its server from the list at random, as a load balancer without sticky
sessions would: a token issued by one instance is used on the other, an inbox cached by one
worker is asked of another. bench/load.py writes the cast (who logs in, which codes exist,
the list of URLs) to the JSON file named by LOAD_CAST and reads back LOAD_OUT: every
request's timing and the counts it checks afterwards (notes and shares acknowledged, jobs).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from locust import FastHttpUser, between, constant_throughput, events, task

CAST: dict = json.loads(Path(os.environ["LOAD_CAST"]).read_text(encoding="utf-8"))
HOSTS: list[str] = CAST["hosts"]
SOAK = CAST["mode"] == "soak"
RUN_SECONDS: float = CAST["seconds"]
SYNC_SCHEMA = 3  # the newest the server serves: tasks, members, materials, replies, coupons
RELOGIN_AFTER_S = 10 * 60  # access tokens live 15 minutes

_started = [time.monotonic()]
_samples: list[tuple[str, float, float, bool, int]] = []  # name, t, ms, ok, instance
_failures: dict[str, int] = {}
_task_errors = [0]
TALLY: dict = {
    "notes_acknowledged": [],
    "shares_acknowledged": [],
    "push_conflicts": 0,
    "read_your_write_checks": 0,
    "inbox_304": 0,
    "tasks_assigned": 0,
    "targets_recorded": 0,
    "jobs": {},
}
_guides = itertools.cycle(CAST["guides"])
_stores = itertools.cycle(CAST["stores"])


def elapsed() -> float:
    return time.monotonic() - _started[0]


def instance_of(url: str) -> int:
    return next(i for i, host in enumerate(HOSTS) if url.startswith(host))


@events.test_start.add_listener
def _on_start(environment, **kwargs):
    _started[0] = time.monotonic()


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, exception, **kwargs):
    url = kwargs.get("url") or ""
    _samples.append((name, round(elapsed(), 3), response_time, exception is None, _index(url)))
    if exception is not None:
        key = f"{name}: {str(exception)[:160]}"
        _failures[key] = _failures.get(key, 0) + 1


def _index(url: str) -> int:
    try:
        return instance_of(str(url))
    except StopIteration:
        return -1


@events.user_error.add_listener
def _on_user_error(user_instance, exception, tb, **kwargs):
    key = f"{type(user_instance).__name__} task error: {exception!r}"[:200]
    _failures[key] = _failures.get(key, 0) + 1
    _task_errors[0] += 1


@events.quitting.add_listener
def _write_out(environment, **kwargs):
    out = {
        "samples": _samples,
        "failures": _failures,
        "task_errors": _task_errors[0],
        "tally": TALLY,
    }
    Path(os.environ["LOAD_OUT"]).write_text(json.dumps(out), encoding="utf-8")


def now_iso(hours: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=hours)).isoformat()


class Staff(FastHttpUser):
    """A logged-in member of staff: one token for every instance."""

    abstract = True
    host = HOSTS[0]  # locust wants one; every request names its own server
    max_redirects = 0  # loopback only: a redirect is an answer, never followed
    phone = ""

    def login(self) -> None:
        with self.client.post(
            random.choice(HOSTS) + "/api/v1/auth/login",
            json={"phone": self.phone, "password": CAST["password"]},
            name="POST /api/v1/auth/login",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"login {self.phone}: {response.status_code}")
                raise RuntimeError(f"login {self.phone} failed")
            self.token = response.json()["access_token"]
        self.logged_in_at = time.monotonic()

    def call(self, method: str, path: str, name: str, *, host: str | None = None, **kwargs):
        if time.monotonic() - self.logged_in_at > RELOGIN_AFTER_S:
            self.login()
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        url = (host or random.choice(HOSTS)) + path
        return self.client.request(method, url, name=name, headers=headers, **kwargs)


class Guide(Staff):
    """A store guide's phone: syncs, opens the inbox and member cards, replies, shares."""

    weight = 10
    wait_time = constant_throughput(0.5) if SOAK else between(0.5, 2.0)

    def on_start(self) -> None:
        self.phone = next(_guides)
        self.login()
        self.members: dict[str, dict] = {}
        self.cursor = None
        self.etag = None
        self._pull(first=True)
        replies = self.call("GET", "/api/v1/quick-replies?limit=50", "GET /api/v1/quick-replies")
        self.replies = [r["id"] for r in replies.json()["items"]]
        materials = self.call("GET", "/api/v1/materials?limit=20", "GET /api/v1/materials")
        self.materials = [m["id"] for m in materials.json()["items"]]

    def _pull(self, *, first: bool = False, host: str | None = None, since=None) -> dict:
        """One sync pull (every page of it); returns the merged changes."""
        since = self.cursor if since is None else since
        query = f"last_pulled_at={since or 'null'}&schema_version={SYNC_SCHEMA}"
        name = "GET /api/v1/sync/pull (first sync)" if first else "GET /api/v1/sync/pull"
        merged: dict[str, dict[str, list]] = {}
        page = None
        while True:
            path = f"/api/v1/sync/pull?{query}" + (f"&page={page}" if page else "")
            body = self.call("GET", path, name, host=host).json()
            for table, ops in body["changes"].items():
                slot = merged.setdefault(table, {"updated": [], "deleted": []})
                slot["updated"] += ops["created"] + ops["updated"]
                slot["deleted"] += ops["deleted"]
            page = body.get("next_page")
            if not page:
                break
        members = merged.get("members", {"updated": [], "deleted": []})
        self.members.update({m["id"]: m for m in members["updated"]})
        for member_id in members["deleted"]:
            self.members.pop(member_id, None)
        self.cursor = body["timestamp"]
        return merged

    def _member(self) -> dict | None:
        return random.choice(list(self.members.values())) if self.members else None

    @task(5)
    def pull(self) -> None:
        self._pull()

    @task(2)
    def push(self) -> None:
        """A note and now and then a corrected name, pushed to one instance; the pull right
        after it, from the other instance, must bring the note back (read your writes
        across app servers)."""
        member = self._member()
        if member is None:
            return
        note_id = uuid.uuid4().hex[:16]
        changes = {
            "member_notes": {
                "created": [
                    {"id": note_id, "member_id": member["id"], "body": "load: 约了周末到店"}
                ],
                "updated": [],
                "deleted": [],
            }
        }
        if random.random() < 0.3:
            name = member["name"][:-1] if member["name"].endswith("*") else member["name"] + "*"
            changes["members"] = {
                "created": [],
                "updated": [{"id": member["id"], "name": name}],
                "deleted": [],
            }
        writer = random.randrange(len(HOSTS))
        since = self.cursor
        for attempt in range(3):
            with self.call(
                "POST",
                f"/api/v1/sync/push?last_pulled_at={self.cursor}",
                "POST /api/v1/sync/push",
                host=HOSTS[writer],
                json={"changes": changes},
                headers={"Idempotency-Key": f"load-{uuid.uuid4().hex}"},
                catch_response=True,
            ) as response:
                if response.status_code == 409 and attempt < 2:
                    response.success()  # WatermelonDB's answer: pull, then push again
                    TALLY["push_conflicts"] += 1
                    since = self.cursor
                    self._pull()
                    continue
                if response.status_code != 200:
                    response.failure(f"push: {response.status_code} {response.text[:200]}")
                    return
                body = response.json()
                if body.get("rejected") or body.get("experimentalRejectedIds"):
                    response.failure(f"push rejected: {json.dumps(body)[:200]}")
                    return
            break
        TALLY["notes_acknowledged"].append(note_id)
        other = HOSTS[(writer + 1) % len(HOSTS)]
        merged = self._pull(host=other, since=since)
        TALLY["read_your_write_checks"] += 1
        echoed = {n["id"] for n in merged.get("member_notes", {}).get("updated", [])}
        if note_id not in echoed:
            events.request.fire(
                request_type="CHECK",
                name="read your write across instances",
                response_time=0,
                response_length=0,
                exception=AssertionError(f"note {note_id} pushed to {writer} not in a pull"),
                url=other,
            )

    @task(4)
    def inbox(self) -> None:
        headers = {"If-None-Match": self.etag} if self.etag else {}
        response = self.call("GET", "/api/v1/inbox", "GET /api/v1/inbox", headers=headers)
        if response.status_code == 304:
            TALLY["inbox_304"] += 1
            return
        self.etag = response.headers.get("ETag")
        open_targets = [
            (item["task"]["id"], target["member_id"])
            for item in response.json()["items"]
            for target in item.get("targets") or []
            if not target.get("result") and item["task"].get("state") != "done"
        ]
        if open_targets and random.random() < 0.5:
            task_id, member_id = random.choice(open_targets)
            self.call(
                "POST",
                f"/api/v1/tasks/{task_id}/targets/{member_id}/result",
                "POST /api/v1/tasks/[id]/targets/[member]/result",
                json={"result": "done", "note": "已联系"},
            )
            TALLY["targets_recorded"] += 1

    @task(4)
    def member_card(self) -> None:
        member = self._member()
        if member is not None:
            self.call(
                "GET", f"/api/v1/members/{member['id']}/card", "GET /api/v1/members/[id]/card"
            )

    @task(2)
    def quick_replies(self) -> None:
        self.call("GET", "/api/v1/quick-replies?limit=50", "GET /api/v1/quick-replies")

    @task(2)
    def render_reply(self) -> None:
        member = self._member()
        if member is not None and self.replies:
            self.call(
                "POST",
                f"/api/v1/quick-replies/{random.choice(self.replies)}/render",
                "POST /api/v1/quick-replies/[id]/render",
                json={"member_id": member["id"]},
            )

    @task(2)
    def materials_list(self) -> None:
        self.call("GET", "/api/v1/materials?limit=20", "GET /api/v1/materials")

    @task(1)
    def share(self) -> None:
        member = self._member()
        if member is None or not self.materials:
            return
        share_id = uuid.uuid4().hex
        response = self.call(
            "POST",
            f"/api/v1/materials/{random.choice(self.materials)}/shares",
            "POST /api/v1/materials/[id]/shares",
            json={"id": share_id, "channel": "member", "member_id": member["id"]},
        )
        if response.status_code == 201:
            TALLY["shares_acknowledged"].append(share_id)


def _in_burst() -> bool:
    """The poster goes up: consumers scan hard through the middle fifth of the day."""
    return not SOAK and 0.4 * RUN_SECONDS <= elapsed() < 0.6 * RUN_SECONDS


class Consumer(FastHttpUser):
    """A shopper's phone scanning an LBS poster: the landing page, then the scan with the
    phone's position. Each comes from its own address (the proxy's X-Forwarded-For)."""

    weight = 6
    host = HOSTS[0]
    max_redirects = 0  # the landing page's fallback URL is outside: never followed

    def wait_time(self) -> float:
        if SOAK:
            return 1 / 0.3
        return random.uniform(0.3, 0.7) if _in_burst() else random.uniform(3, 7)

    def on_start(self) -> None:
        self.address = (
            f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        )

    @task
    def scan(self) -> None:
        code = random.choice(CAST["codes"])
        lat, lng = code["near"]
        headers = {
            "X-Forwarded-For": self.address,
            "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile Safari",
        }
        host = random.choice(HOSTS)
        if random.random() < 0.5:
            self.client.get(f"{host}/s/{code['code']}", name="GET /s/[code]", headers=headers)
        self.client.post(
            f"{random.choice(HOSTS)}/api/v1/scans",
            name="POST /api/v1/scans",
            headers=headers,
            json={
                "code": code["code"],
                "lat": lat + random.uniform(-0.1, 0.1),
                "lng": lng + random.uniform(-0.1, 0.1),
            },
        )
        # the next scan is another shopper's phone
        self.address = (
            f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        )


class Manager(Staff):
    """A store manager: hands the store's tasks (a campaign's, or one they write) to guides."""

    weight = 2
    wait_time = constant_throughput(0.2) if SOAK else between(2.0, 5.0)

    def on_start(self) -> None:
        store = next(_stores)
        self.phone, self.guide_ids = store["manager"], store["guide_ids"]
        self.login()

    def _assign(self, task_id: str) -> None:
        self.call(
            "POST",
            f"/api/v1/tasks/{task_id}/assign",
            "POST /api/v1/tasks/[id]/assign",
            json={"guide_id": random.choice(self.guide_ids)},
        )
        TALLY["tasks_assigned"] += 1

    @task(3)
    def assign_from_inbox(self) -> None:
        body = self.call("GET", "/api/v1/inbox", "GET /api/v1/inbox (manager)").json()
        unassigned = [
            item["task"]["id"]
            for item in body["items"] + body.get("claimable", [])
            if item["task"].get("assignee_id") is None and item["task"].get("state") == "open"
        ]
        for task_id in unassigned[:3]:
            self._assign(task_id)

    @task(1)
    def write_and_assign(self) -> None:
        tasks = self.call(
            "POST",
            "/api/v1/tasks",
            "POST /api/v1/tasks",
            json={
                "title": "周末新品试穿邀约",
                "brief": "邀请老客周末到店试穿",
                "starts_at": now_iso(-1),
                "due_at": now_iso(48),
            },
        ).json()
        self._assign(tasks[0]["id"])


class Headquarters(Staff):
    """HQ's operator: browses campaigns and dashboards; a fifth into the day publishes a
    campaign to every store, a third into it imports a file of members; follows both jobs."""

    fixed_count = 1
    wait_time = constant_throughput(0.25) if SOAK else between(2.0, 4.0)

    def on_start(self) -> None:
        self.phone = CAST["hq"]
        self.login()
        self.following: dict[str, str] = {}  # job id -> what it is

    @task
    def work(self) -> None:
        jobs = TALLY["jobs"]
        if "campaign.publish" not in jobs and elapsed() > 0.2 * RUN_SECONDS:
            self._publish()
        elif "members.import" not in jobs and elapsed() > 0.35 * RUN_SECONDS:
            self._import()
        for job_id, kind in list(self.following.items()):
            job = self.call("GET", f"/api/v1/jobs/{job_id}", "GET /api/v1/jobs/[id]").json()
            jobs[kind] = {key: job.get(key) for key in ("id", "state", "progress", "error")}
            if job["state"] in ("succeeded", "failed", "cancelled"):
                jobs[kind]["seconds"] = round(elapsed() - jobs[kind + ".started_at"], 1)
                del self.following[job_id]
        if random.random() < 0.5:
            self.call("GET", "/api/v1/campaigns?limit=20", "GET /api/v1/campaigns")
        else:
            self.call(
                "GET", "/api/v1/dashboards/tasks?group_by=region", "GET /api/v1/dashboards/tasks"
            )

    def _follow(self, kind: str, response) -> None:
        job = response.json()
        TALLY["jobs"][kind] = {"id": job["id"], "state": job["state"]}
        TALLY["jobs"][kind + ".started_at"] = elapsed()
        self.following[job["id"]] = kind

    def _publish(self) -> None:
        campaign = self.call(
            "POST",
            "/api/v1/campaigns",
            "POST /api/v1/campaigns",
            json={
                "title": "春季新品老客回访",
                "target": {"all": True},
                "segment": {"stages": ["regular"]},
                "distribution": "manager",
                "starts_at": now_iso(-1),
                "due_at": now_iso(72),
            },
        ).json()
        published = self.call(
            "POST",
            f"/api/v1/campaigns/{campaign['id']}/publish",
            "POST /api/v1/campaigns/[id]/publish",
            headers={"Idempotency-Key": f"load-publish-{campaign['id']}"},
        )
        self._follow("campaign.publish", published)

    def _import(self) -> None:
        boundary = uuid.uuid4().hex
        content = Path(CAST["import_csv"]).read_bytes()
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                'filename="members.csv"\r\nContent-Type: text/csv\r\n\r\n'
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        started = self.call(
            "POST",
            "/api/v1/imports/members",
            "POST /api/v1/imports/members",
            data=body,
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Idempotency-Key": f"load-import-{boundary}",
            },
        )
        self._follow("members.import", started)


class Floor(FastHttpUser):
    """The bare Flask endpoint on the same gunicorn workers: what any request costs at least."""

    fixed_count = 1
    host = HOSTS[0]
    max_redirects = 0
    wait_time = constant_throughput(4)

    @task
    def bare(self) -> None:
        self.client.get(f"{random.choice(HOSTS)}/bench/bare", name="GET /bench/bare (floor)")
