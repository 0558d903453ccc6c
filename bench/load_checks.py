"""What bench/load.py does around the locust run: HQ's first content, the import file, the
workers' memory, and the checks afterwards that nothing was lost between two instances."""

from __future__ import annotations

import csv
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from sqlalchemy import bindparam, text

JOBS_NAME = "guideapp-load"  # the queue's key prefix: bench/load.py empties only its own
FINISHED = ("succeeded", "failed", "cancelled")


class Api:
    """A logged-in member of staff over plain HTTP (the checks run outside locust)."""

    def __init__(self, phone: str, password: str, host: str):
        self.http = requests.Session()
        answer = self.http.post(
            f"{host}/api/v1/auth/login", json={"phone": phone, "password": password}, timeout=30
        )
        answer.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def call(self, method: str, url: str, *, expect: tuple[int, ...] = (200,), **kwargs):
        answer = self.http.request(method, url, timeout=60, **kwargs)
        if answer.status_code not in expect:
            raise AssertionError(f"{method} {url}: {answer.status_code} {answer.text[:300]}")
        return answer


def _iso(hours: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=hours)).isoformat()


def hq_writes_content(host: str, hq: str, password: str, *, near: list[float]) -> dict:
    """What HQ sets up before the day: an LBS poster, quick replies, materials for all."""
    api = Api(hq, password, host)
    code = api.call(
        "POST",
        f"{host}/api/v1/codes",
        expect=(201,),
        json={"kind": "lbs", "channel": "poster", "name": "春季新品 LBS 海报"},
    ).json()["code"]
    for n in range(20):
        api.call(
            "POST",
            f"{host}/api/v1/quick-replies",
            expect=(201,),
            json={
                "title": f"问候 {n}",
                "body": "您好{member.name}，春季新品已到店，欢迎周末来试穿。",
                "scene": "greeting",
            },
        )
    for n in range(10):
        api.call(
            "POST",
            f"{host}/api/v1/materials",
            expect=(201,),
            json={
                "kind": "article",
                "title": f"春季新品图文 {n}",
                "url": f"https://mp.example.cn/spring/{n}",
                "target": {"all": True},
            },
        )
    return {"code": {"code": code, "near": near}}


def write_member_file(path: Path, stores: list[dict], *, rows: int) -> int:
    """The members file HQ imports during the day: new phones (17…, a prefix neither the
    demo nor bench/scale.py uses), each bound to a guide of the cast's stores."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["手机号", "姓名", "性别", "导购手机号", "门店编码", "来源渠道"])
        for n in range(rows):
            store = stores[n % len(stores)]
            guide = store["guide_phones"][n // len(stores) % len(store["guide_phones"])]
            writer.writerow([f"177{n:08d}", f"导入会员{n}", "女", guide, store["code"], "门店"])
    return rows


def empty_queue(url: str) -> None:
    """Drop what is left of this run's queue (only its own keys)."""
    from guideapp.jobs.queue import make_huey

    make_huey(url, JOBS_NAME).flush()


class MemorySampler:
    """The gunicorn workers' resident memory (psutil), every few seconds, on a thread."""

    def __init__(self, masters: list[int], every_s: float = 5.0):
        self.masters, self.every_s = masters, every_s
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self.sample()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.every_s):
                return

    def sample(self) -> None:
        import psutil

        workers = {}
        for master in self.masters:
            try:
                for child in psutil.Process(master).children():
                    workers[child.pid] = child.memory_info().rss / 1024 / 1024
            except psutil.Error:
                continue  # a worker that just exited
        if workers:
            self.samples.append(
                {
                    "t": round(time.monotonic() - self._started, 1),
                    "sum_mb": round(sum(workers.values()), 1),
                    "max_mb": round(max(workers.values()), 1),
                    "pids": sorted(workers),
                }
            )


# --- after the day ------------------------------------------------------------------------


def after_the_day(engine, cast: dict, tally: dict) -> dict:
    """The checks that two instances with per-worker caches lost nothing: every push and
    share acknowledged is stored, HQ's jobs finished, a change made through one instance
    shows in the inbox and the sync of the other, ETags agree between instances."""
    problems: list[str] = []
    figures: dict = {}
    hosts = cast["hosts"]
    _stored(engine, tally, figures, problems)
    hq = Api(cast["hq"], cast["password"], hosts[0])
    _jobs(hq, hosts, cast, tally, figures, problems)
    try:
        _between_instances(cast, figures, problems)
    except AssertionError as failed:
        problems.append(str(failed))
    figures["in_run"] = {
        key: tally[key]
        for key in (
            "read_your_write_checks",
            "push_conflicts",
            "inbox_304",
            "tasks_assigned",
            "targets_recorded",
        )
    }
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    return {"ok": not problems, "figures": figures, "problems": problems}


def _stored(engine, tally, figures, problems) -> None:
    with engine.connect() as conn:
        for table, key in (
            ("member_notes", "notes_acknowledged"),
            ("shares", "shares_acknowledged"),
        ):
            ids = tally[key]
            found = conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": ids or ["-"]},
            ).scalar_one()
            figures[table] = f"{found}/{len(ids)} acknowledged stored"
            if found != len(ids):
                problems.append(f"{table}: {len(ids) - found} acknowledged writes missing")


def _jobs(hq: Api, hosts, cast, tally, figures, problems) -> None:
    """HQ's campaign and import: finished (waited for here if the day ended first)."""
    deadline = time.monotonic() + 120  # for both: the worker had the whole day already
    for kind in ("campaign.publish", "members.import"):
        job = tally["jobs"].get(kind)
        if job is None:
            problems.append(f"{kind}: never started")
            continue
        while True:
            job = hq.call("GET", f"{hosts[-1]}/api/v1/jobs/{job['id']}").json()
            if job["state"] in FINISHED or time.monotonic() > deadline:
                break
            time.sleep(1)
        seconds = tally["jobs"].get(kind, {}).get("seconds")
        figures[kind] = f"{job['state']}, {job['progress']['done']} {job['progress']['unit']}" + (
            f" in {seconds} s during the day" if seconds else " (finished after the day)"
        )
        if job["state"] != "succeeded":
            problems.append(f"{kind}: {job['state']} {job.get('error')}")
        elif kind == "members.import":
            report = job["result"]
            if report["imported"] != cast["import_rows"] or report["failed"]:
                problems.append(f"import: {report['imported']} imported of {cast['import_rows']}")


def _between_instances(cast, figures, problems) -> None:
    """A store nobody used during the day: its manager writes a task for a guide through
    instance A; every worker of both instances must show it in the guide's inbox (their
    page caches are their own), and a note pushed to A must come back in a pull from B."""
    a, b = cast["hosts"][0], cast["hosts"][-1]
    store = cast["checker"]
    guide = Api(store["guide_phones"][0], cast["password"], b)
    manager = Api(store["manager"], cast["password"], a)
    asks = 4 * cast["workers"]  # enough that each worker of an instance likely answers

    def inboxes() -> list[requests.Response]:
        return [guide.call("GET", f"{host}/api/v1/inbox") for host in (a, b) for _ in range(asks)]

    before = inboxes()  # fills every worker's cache with the page before the change
    task = manager.call(
        "POST",
        f"{a}/api/v1/tasks",
        expect=(201,),
        json={
            "title": "跨实例检查",
            "starts_at": _iso(-1),
            "due_at": _iso(24),
            "assignee_ids": [store["guide_ids"][0]],
        },
    ).json()[0]
    after = inboxes()
    stale = sum(task["id"] not in {i["task"]["id"] for i in r.json()["items"]} for r in after)
    if stale:
        problems.append(f"inbox: {stale} of {len(after)} answers missed a task written on A")
    etags = {r.headers.get("ETag") for r in after}
    same = guide.call(
        "GET",
        f"{b}/api/v1/inbox",
        expect=(304,),
        headers={"If-None-Match": after[0].headers["ETag"]},
    )
    figures["inbox_between_instances"] = (
        f"{len(after) - stale}/{len(after)} answers from both instances showed the new task "
        f"(ETags before {len({r.headers.get('ETag') for r in before})}, after {len(etags)}; "
        f"A's ETag answered {same.status_code} by B)"
    )
    if len(etags) != 1:
        problems.append(f"inbox: {len(etags)} different ETags for one page")

    pulled = guide.call("GET", f"{b}/api/v1/sync/pull?last_pulled_at=null&schema_version=3")
    cursor, member = pulled.json()["timestamp"], pulled.json()["changes"]["members"]
    mine = (member["created"] + member["updated"])[0]["id"]
    note = uuid.uuid4().hex[:16]
    guide.call(
        "POST",
        f"{a}/api/v1/sync/push?last_pulled_at={cursor}",
        json={
            "changes": {
                "member_notes": {
                    "created": [{"id": note, "member_id": mine, "body": "跨实例"}],
                    "updated": [],
                    "deleted": [],
                }
            }
        },
        headers={"Idempotency-Key": f"check-{note}"},
    )
    back = guide.call("GET", f"{b}/api/v1/sync/pull?last_pulled_at={cursor}&schema_version=3")
    notes = back.json()["changes"].get("member_notes", {})
    echoed = {n["id"] for n in notes.get("created", []) + notes.get("updated", [])}
    figures["push_a_pull_b"] = "note pushed to A came back from B" if note in echoed else "lost"
    if note not in echoed:
        problems.append("sync: a note pushed to A did not come back in a pull from B")
