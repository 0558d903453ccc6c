"""The fault scenarios of `make faults`: each breaks something under the faulted side, lets
the client do what a real client does (retry with the same Idempotency-Key), and returns
what it checked; a broken promise raises Broken with the reason."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from bench.fault_harness import GUIDE, HQ, Harness, differences, figures

NO_ANSWER = (OSError, http.client.HTTPException)  # the server went away mid-request
RETRY_STATUSES = {409, 503}  # "still being processed" / "unreachable now": retry shortly


class Broken(Exception):
    """A promise the scenario checks was not kept."""


def check(condition, why: str) -> None:
    if not condition:
        raise Broken(why)


def call(side, method, path, who=None, payload=None, body=b"", headers=None, timeout=60.0):
    headers = {**(side.auth(who) if who else {}), **(headers or {})}
    if payload is not None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
    return side.request(method, path, body, headers, timeout=timeout)


def until_answered(send, seconds: float = 60.0, retry=RETRY_STATUSES):
    """A client's retry loop: again on no answer, 409 (in progress) and 503; (answer, tries)."""
    deadline, tries = time.monotonic() + seconds, 0
    while True:
        tries += 1
        try:
            answer = send()
            if answer[0] not in retry:
                return answer, tries
        except NO_ANSWER:
            pass
        if time.monotonic() > deadline:
            raise Broken(f"no final answer after {tries} tries in {seconds:g} s")
        time.sleep(0.2)


def same_figures(h: Harness) -> dict:
    faulted, clean = figures(h.engines["faulted"]), figures(h.engines["clean"])
    diff = differences(faulted, clean)
    check(not diff, "the database differs from the fault-free run: " + "; ".join(diff[:6]))
    return faulted


def _json(answer) -> dict:
    return json.loads(answer[2] or b"{}")


def _error_shaped(body: bytes, status: int) -> bool:
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(payload, dict)
        and payload.get("code") == status
        and set(payload) == {"code", "status", "message", "errors"}
    )


# --- sync push ------------------------------------------------------------------------------


def _guide_members(h: Harness, count: int) -> list[str]:
    return h.guide_members[:count]


def _pull(side, cursor=None) -> tuple[int, dict]:
    """(new cursor, {table: ids created or updated}) of a guide's pull, every page."""
    base = f"/api/v1/sync/pull?schema_version=1&last_pulled_at={cursor or 'null'}"
    page, seen = None, {}
    while True:
        answer = call(side, "GET", base + (f"&page={page}" if page else ""), GUIDE)
        check(answer[0] == 200, f"pull answered {answer[0]}: {answer[2][:200]!r}")
        body = _json(answer)
        for table, ops in body["changes"].items():
            seen.setdefault(table, set()).update(r["id"] for r in ops["created"] + ops["updated"])
        page = body.get("next_page")
        if not page:
            return body["timestamp"], seen


def _notes_push(h: Harness, count: int, label: str) -> tuple[bytes, list[str]]:
    members = _guide_members(h, 50)
    notes = [
        {"id": uuid.uuid4().hex[:16], "member_id": members[i % len(members)], "body": f"{label}{i}"}
        for i in range(count)
    ]
    changes = {"member_notes": {"created": notes, "updated": [], "deleted": []}}
    return json.dumps({"changes": changes}, ensure_ascii=False).encode(), [n["id"] for n in notes]


def _push(side, cursor: int, body: bytes, key: str, timeout=60.0):
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    path = f"/api/v1/sync/push?last_pulled_at={cursor}"
    return call(side, "POST", path, GUIDE, body=body, headers=headers, timeout=timeout)


def worker_killed_mid_sync_push(h: Harness) -> str:
    """5,000 notes pushed; every gunicorn worker SIGKILLed while the push is inside its
    transaction (held there by a table lock this driver takes, so the kill lands mid-push
    every time); the phone retries with the same Idempotency-Key."""
    cursor, _ = _pull(h.faulted)
    clean_cursor, _ = _pull(h.clean)
    body, ids = _notes_push(h, 5000, "断网前")
    key = uuid.uuid4().hex
    outcome: dict = {}

    def first_try():
        try:
            outcome["answer"] = _push(h.faulted, cursor, body, key)
        except NO_ANSWER as error:
            outcome["error"] = error

    with h.engines["faulted"].connect() as holder:
        holder.execute(text("LOCK TABLE member_notes IN SHARE ROW EXCLUSIVE MODE"))
        pusher = threading.Thread(target=first_try)
        pusher.start()
        _wait_for_lock_wait(h, "member_notes")
        killed = h.gunicorn.kill_workers()
        holder.rollback()
    pusher.join(30)
    check("error" in outcome, f"the killed push was answered: {outcome.get('answer')}")
    h.gunicorn.wait_for_workers()
    answer, tries = until_answered(lambda: _push(h.faulted, cursor, body, key))
    check(answer[0] == 200, f"the retried push answered {answer[0]}: {answer[2][:200]!r}")
    replay = _push(h.faulted, cursor, body, key)
    check(replay[1].get("Idempotent-Replayed") == "true", "a second retry was not a replay")
    clean = _push(h.clean, clean_cursor, body, key)
    check(clean[0] == 200, f"the clean push answered {clean[0]}")
    _, pulled = _pull(h.faulted, cursor)
    missing = set(ids) - pulled.get("member_notes", set())
    check(not missing, f"{len(missing)} pushed notes never reach an incremental pull")
    same_figures(h)
    return (
        f"{len(killed)} workers killed mid-push, {tries} retries, 5000 notes applied once "
        "(a further retry replayed), all 5000 in the next incremental pull; DB = clean run"
    )


def _wait_for_lock_wait(h: Harness, table: str, seconds: float = 30.0) -> None:
    """Until a session of the faulted database waits on a lock of `table`'s writes."""
    deadline = time.monotonic() + seconds
    with h.engines["faulted"].connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE :q"
                ),
                {"q": f"%{table}%"},
            ).scalar()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.05)
    raise Broken(f"no request reached {table} within {seconds:g} s")


# --- jobs: import and publish ---------------------------------------------------------------


def _multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _members_file(h: Harness, rows: int) -> bytes:
    """New members, three in four with a guide: recruits (bounties, tier steps), and a
    repeated phone, so the report has a failure to carry across a restart too."""
    with h.engines["faulted"].connect() as conn:
        guides = list(
            conn.execute(
                text("SELECT phone FROM staff WHERE role = 'guide' ORDER BY phone LIMIT 7")
            ).scalars()
        )
    lines = ["手机号,姓名,导购手机号"]
    for n in range(rows - 1):
        lines.append(f"1391{n:07d},故障客{n},{guides[n % 7] if n % 4 != 3 else ''}")
    lines.append("13910000001,重复,")
    return ("\n".join(lines) + "\n").encode()


def worker_killed_mid_import(h: Harness) -> str:
    """A 3,000-row member import (guides' recruits: commission bounties), batches of 500;
    the job worker SIGKILLed after two checkpoints, a new worker started."""
    content = _members_file(h, 3000)
    body, content_type = _multipart("members.csv", content)
    key = uuid.uuid4().hex
    headers = {"Content-Type": content_type, "Idempotency-Key": key}
    h.start_worker("tests.slow_units")
    accepted = call(h.faulted, "POST", "/api/v1/imports/members", HQ, body=body, headers=headers)
    check(accepted[0] == 202, f"the import answered {accepted[0]}: {accepted[2][:200]!r}")
    job_id = _json(accepted)["id"]
    h.wait_job(job_id, lambda j: j["progress_done"] >= 1000)
    h.kill_worker()
    killed = h.job(job_id)
    check(
        killed["state"] == "running" and killed["progress_done"] < 3000,
        f"the kill did not land mid-job: {killed}",
    )
    h.start_worker()
    done = h.wait_job(job_id, lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    check(done["state"] == "succeeded", f"the resumed import ended {done}")
    again = call(h.faulted, "POST", "/api/v1/imports/members", HQ, body=body, headers=headers)
    check(_json(again).get("id") == job_id, "a retried POST started another import")
    clean = call(
        h.clean,
        "POST",
        "/api/v1/imports/members?wait=true",
        HQ,
        body=body,
        headers={**headers, "Content-Type": content_type},
    )
    check(clean[0] == 200, f"the clean import answered {clean[0]}: {clean[2][:200]!r}")
    check(done["result"] == _json(clean), "the resumed job's report differs from a clean run's")
    found = same_figures(h)
    return (
        f"killed at {killed['progress_done']}/3000 rows, resumed (attempt {done['attempts']}), "
        f"report = clean run's ({done['result']['imported']} imported, "
        f"{done['result']['failed']} failed); members {found['members'][0]}, "
        f"recruits {found['commission_recruits'][0]}, commission entries "
        f"{found['commission_entries'][0]} summing {found['commission_entries'][1]} fen = clean"
    )


def _campaign(side, title: str) -> str:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    body = {
        "title": title,
        "target": {"all": True},
        "segment": {"stages": ["regular"]},
        "distribution": "auto",
        "starts_at": (now - timedelta(days=1)).isoformat(),
        "due_at": (now + timedelta(days=5)).isoformat(),
    }
    created = call(side, "POST", "/api/v1/campaigns", HQ, payload=body)
    check(created[0] == 201, f"campaign not created: {created[0]} {created[2][:200]!r}")
    return _json(created)["id"]


def _publish(side, campaign_id: str, wait: bool = False):
    query = "?wait=true" if wait else ""
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    return call(
        side, "POST", f"/api/v1/campaigns/{campaign_id}/publish{query}", HQ, headers=headers
    )


def worker_killed_mid_publish(h: Harness) -> str:
    """A campaign published to the 48 demo stores, 4 stores a checkpoint; the worker
    SIGKILLed after two checkpoints, a new one started."""
    title = "故障演练:发布中断"
    campaign, clean_campaign = _campaign(h.faulted, title), _campaign(h.clean, title)
    h.start_worker("tests.slow_units")
    accepted = _publish(h.faulted, campaign)
    check(accepted[0] == 202, f"publish answered {accepted[0]}")
    job_id = _json(accepted)["id"]
    h.wait_job(job_id, lambda j: j["progress_done"] >= 8)
    h.kill_worker()
    killed = h.job(job_id)
    check(killed["state"] == "running", f"the kill did not land mid-job: {killed}")
    h.start_worker()
    done = h.wait_job(job_id, lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    check(done["state"] == "succeeded", f"the resumed publish ended {done}")
    clean = _publish(h.clean, clean_campaign, wait=True)
    check(clean[0] == 200, f"the clean publish answered {clean[0]}")
    found = same_figures(h)  # tasks per (campaign, store) among them
    per_store = {k: n for k, n in found["tasks_per_campaign_store"].items() if k.startswith(title)}
    check(per_store, "the publish wrote no tasks")
    return (
        f"killed at {killed['progress_done']}/{done['progress_done']} stores, resumed: "
        f"{sum(per_store.values())} tasks in {len(per_store)} stores, the count per "
        f"(campaign, store) and {found['task_targets'][0]} task targets = clean run"
    )


# --- PostgreSQL restarted under load ---------------------------------------------------------


def postgres_restarted_under_load(h: Harness) -> str:
    """4 clients POST orders and GET /me without pause; PostgreSQL is stopped (fast
    shutdown: sessions ended, open transactions rolled back) for 3 s and started again.
    Requests meanwhile must get the JSON 503; the app must recover with no restart."""
    run = os.urandom(3).hex()
    ordered_at = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0)
    with h.engines["faulted"].connect() as conn:
        phones = list(
            conn.execute(
                text("SELECT phone FROM members WHERE phone IS NOT NULL ORDER BY id LIMIT 40")
            ).scalars()
        )
    stop, lock = threading.Event(), threading.Lock()
    seen: list[tuple[float, str, int | str, bool]] = []
    orders: dict[str, dict] = {}
    answered: set[str] = set()
    marks: dict[str, float] = {}

    def client(number: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 2:
                order_no = f"F4-{run}-{number}-{n}"
                order = {
                    "channel": "pos",
                    "order_no": order_no,
                    "amount_fen": 1000 + n,
                    "ordered_at": ordered_at.isoformat(),
                    "phone": phones[(number * 7 + n) % len(phones)],
                    "store_code": "SH001",
                }
                with lock:
                    orders[order_no] = order
                send = lambda o=order: call(h.faulted, "POST", "/api/v1/orders", HQ, payload=o)  # noqa: E731
                kind = "order"
            else:
                send = lambda: call(h.faulted, "GET", "/api/v1/me", GUIDE)  # noqa: E731
                kind = "me"
            started = time.monotonic()
            try:
                status, _, body = send()
                shaped = status < 400 or _error_shaped(body, status)
            except NO_ANSWER as error:
                status, shaped = type(error).__name__, False
            with lock:
                seen.append((started, kind, status, shaped))
                if kind == "order" and status == 200:
                    answered.add(order_no)
            stop.wait(0.05)  # a steady load, not a flood: the clean run replays every order

    call(h.faulted, "GET", "/api/v1/me", GUIDE)  # log in while the database is there
    call(h.faulted, "GET", "/api/v1/me", HQ)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    marks["down"] = time.monotonic()
    h.pg.stop()
    time.sleep(3)
    h.pg.start()
    marks["up"] = time.monotonic()
    time.sleep(5)
    stop.set()
    for thread in threads:
        thread.join(60)
    statuses = {}
    for _, _, status, _ in seen:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    check(set(statuses) <= {"200", "503"}, f"answers other than 200 and 503: {statuses}")
    check(statuses.get("503"), f"no request noticed the database was down: {statuses}")
    check(all(shaped for *_, shaped in seen), "a 503 without the JSON error shape")
    late = [s for started, _, s, _ in seen if started > marks["up"] + 2]
    check(late and set(late) == {200}, f"not recovered 2 s after the restart: {late[-10:]}")
    # The client retries what was not answered 200 (replays are harmless: channel + order_no).
    for order_no in sorted(set(orders) - answered):
        answer, _ = until_answered(
            lambda o=orders[order_no]: call(h.faulted, "POST", "/api/v1/orders", HQ, payload=o)
        )
        check(answer[0] == 200, f"order {order_no} retried: {answer[0]}")
    for order in orders.values():
        clean = call(h.clean, "POST", "/api/v1/orders", HQ, payload=order)
        check(clean[0] == 200, f"clean order answered {clean[0]}")
    same_figures(h)
    recovered = min((s for s, _, st, _ in seen if s > marks["up"] and st == 200), default=None)
    return (
        f"{len(seen)} requests: {statuses} (every 503 the JSON error shape, no 500, none "
        f"unanswered); first 200 {recovered - marks['up']:.1f} s after the start, without "
        f"restarting the app; {len(orders)} orders, {len(orders) - len(answered)} retried, "
        "each recorded once = clean run"
        if recovered
        else "recovered"
    )


# --- Redis restarted under the job worker ----------------------------------------------------


def redis_restarted_under_worker(h: Harness) -> str:
    """One publish running (slow units) and two queued behind it in Redis; Redis killed
    (no persistence: the queued messages are gone), a third publish started while it is
    down, Redis started again empty. The worker is not restarted."""
    titles = [f"故障演练:Redis {n}" for n in range(1, 5)]
    faulted = [_campaign(h.faulted, t) for t in titles]
    clean = [_campaign(h.clean, t) for t in titles]
    h.start_worker("tests.slow_units")
    jobs = []
    for campaign in faulted[:3]:
        accepted = _publish(h.faulted, campaign)
        check(accepted[0] == 202, f"publish answered {accepted[0]}")
        jobs.append(_json(accepted)["id"])
    h.wait_job(jobs[0], lambda j: j["progress_done"] >= 4)
    waiting = [h.job(j)["state"] for j in jobs[1:]]
    check(waiting == ["queued", "queued"], f"not queued behind the first: {waiting}")
    worker = h.worker
    h.redis.stop()
    during = _publish(h.faulted, faulted[3])
    check(during[0] == 202, f"a publish while Redis is down answered {during[0]}")
    jobs.append(_json(during)["id"])
    time.sleep(1)
    h.redis.start()
    started = time.monotonic()
    ended = [
        h.wait_job(j, lambda j: j["state"] in ("succeeded", "failed", "cancelled"), 120)
        for j in jobs
    ]
    took = time.monotonic() - started
    check(all(e["state"] == "succeeded" for e in ended), f"jobs ended {ended}")
    check(worker is h.worker and worker.process.poll() is None, "the worker had to restart")
    for campaign in clean:
        answer = _publish(h.clean, campaign, wait=True)
        check(answer[0] == 200, f"clean publish answered {answer[0]}")
    found = same_figures(h)  # tasks per (campaign, store) among them
    per_campaign = {
        t: sum(n for k, n in found["tasks_per_campaign_store"].items() if k.startswith(t + "@"))
        for t in titles
    }
    check(len(set(per_campaign.values())) == 1, f"tasks per campaign differ: {per_campaign}")
    return (
        f"2 queued messages lost and 1 job committed with Redis down: all 4 publishes "
        f"succeeded {took:.1f} s after Redis came back (same worker process), "
        f"{per_campaign[titles[0]]} tasks each, per (campaign, store) = clean run"
    )


# --- a client that drops the response and retries --------------------------------------------


def client_drops_and_retries(h: Harness) -> str:
    """A push, an order (with and without an Idempotency-Key) and a WeChat Pay notification
    are each sent whole, the connection dropped before the answer, and sent again."""
    from tests.wechatpay_fake import SAMPLE_TRANSACTION

    outcomes = []
    cursor, _ = _pull(h.faulted)
    clean_cursor, _ = _pull(h.clean)
    body, _ = _notes_push(h, 300, "掉线重发")
    key = uuid.uuid4().hex
    drop_headers = {
        **h.faulted.auth(GUIDE),
        "Content-Type": "application/json",
        "Idempotency-Key": key,
    }
    h.faulted.send_and_drop(
        "POST", f"/api/v1/sync/push?last_pulled_at={cursor}", body, drop_headers
    )
    answer, tries = until_answered(lambda: _push(h.faulted, cursor, body, key))
    check(answer[0] == 200, f"the push retried answered {answer[0]}")
    outcomes.append(f"push {tries} tries")
    check(_push(h.clean, clean_cursor, body, key)[0] == 200, "clean push")

    ordered_at = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(microsecond=0)
    run = os.urandom(3).hex()
    for keyed in (True, False):
        order = {
            "channel": "tmall",
            "order_no": f"F6-{run}-{keyed}",
            "amount_fen": 25_800,
            "ordered_at": ordered_at.isoformat(),
            "phone": "13912340000" if keyed else "13912340001",
            "store_code": "SH001",
        }
        headers = {"Idempotency-Key": uuid.uuid4().hex} if keyed else {}
        raw = json.dumps(order).encode()
        h.faulted.send_and_drop(
            "POST",
            "/api/v1/orders",
            raw,
            {**h.faulted.auth(HQ), "Content-Type": "application/json", **headers},
        )
        answer, tries = until_answered(
            lambda o=order, hd=headers: call(
                h.faulted, "POST", "/api/v1/orders", HQ, payload=o, headers=hd
            )
        )
        check(answer[0] == 200, f"the order retried answered {answer[0]}")
        outcomes.append(f"order {'with' if keyed else 'without'} key {tries} tries")
        check(
            call(h.clean, "POST", "/api/v1/orders", HQ, payload=order, headers=headers)[0] == 200,
            "clean order",
        )

    resource = {
        **SAMPLE_TRANSACTION,
        "transaction_id": f"4200{run}{int(time.time())}",
        "out_trade_no": f"F6{run}",
        "amount": {
            "total": 39_900,
            "payer_total": 39_900,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
        "payer": {"openid": f"o-faults-{run}"},
        "attach": "SH001",
        "success_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    headers, note = h.pay.notification("TRANSACTION.SUCCESS", resource)
    path = f"/api/v1/wechat/pay/notify/{h.merchant_id}"
    h.faulted.send_and_drop("POST", path, note, headers)
    answer, tries = until_answered(lambda: h.faulted.request("POST", path, note, h.pay.sign(note)))
    check(answer[0] == 204, f"the redelivered notification answered {answer[0]}")
    outcomes.append(f"pay notification {tries} tries")
    check(h.clean.request("POST", path, note, h.pay.sign(note))[0] == 204, "clean notify")
    found = same_figures(h)
    return (
        f"{', '.join(outcomes)}: 300 notes, 2 orders and 1 payment (member, order, "
        f"commission) each recorded once; orders {found['orders']} = clean run"
    )


# --- the uploads disk full ------------------------------------------------------------------


def uploads_disk_full(h: Harness) -> str:
    """The uploads directory is a tmpfs; a filler leaves it under 256 KB free, and a 1 MB
    image is uploaded: a JSON 503, no partial file, no row; with room again it is kept."""
    check(h.uploads_mounted, "could not mount a tmpfs for the uploads (needs root)")
    image = b"\x89PNG\r\n\x1a\n" + os.urandom(1 << 20)
    body, content_type = _multipart("poster.png", image)
    filler = h.uploads / "filler"
    stat = os.statvfs(h.uploads)
    with filler.open("wb") as out:
        out.write(b"\0" * max(stat.f_bavail * stat.f_frsize - (256 << 10), 0))
    files_before = _files(h)
    free_before = _free(h)
    try:
        full = call(
            h.faulted,
            "POST",
            "/api/v1/uploads",
            HQ,
            body=body,
            headers={"Content-Type": content_type},
        )
        check(
            full[0] == 503 and _error_shaped(full[2], 503),
            f"a full disk answered {full[0]}: {full[2][:200]!r}",
        )
        message = _json(full)["message"]
        check(_files(h) == files_before, f"files left: {_files(h) - files_before}")
        check(abs(_free(h) - free_before) < 64 << 10, "the failed upload kept disk space")
        same_figures(h)  # no upload row on either side
    finally:
        filler.unlink()
    kept = call(
        h.faulted, "POST", "/api/v1/uploads", HQ, body=body, headers={"Content-Type": content_type}
    )
    check(kept[0] == 201, f"with room again the upload answered {kept[0]}")
    clean = call(
        h.clean, "POST", "/api/v1/uploads", HQ, body=body, headers={"Content-Type": content_type}
    )
    check(clean[0] == 201, f"clean upload answered {clean[0]}")
    same_figures(h)
    return f"503 {message!r}; no partial file, no row; kept once there was room"


def _files(h: Harness) -> set[str]:
    return {str(p.relative_to(h.uploads)) for p in h.uploads.rglob("*") if not p.is_dir()}


def _free(h: Harness) -> int:
    stat = os.statvfs(h.uploads)
    return stat.f_bavail * stat.f_frsize


def afterwards(h: Harness) -> str:
    """Every figure of the faulted database against the fault-free run's, at the end."""
    found = same_figures(h)
    return (
        f"members {found['members'][0]}, orders {found['orders'][0]} summing "
        f"{found['orders'][1]} fen, commission entries {found['commission_entries'][0]} summing "
        f"{found['commission_entries'][1]} fen, change log {sum(found['change_log'].values())} "
        "rows (none above its tenant's counter): equal to the fault-free run"
    )


SCENARIOS = {
    "sync_push_kill": worker_killed_mid_sync_push,
    "import_kill": worker_killed_mid_import,
    "publish_kill": worker_killed_mid_publish,
    "postgres_restart": postgres_restarted_under_load,
    "redis_restart": redis_restarted_under_worker,
    "drop_and_retry": client_drops_and_retries,
    "disk_full": uploads_disk_full,
    "afterwards": afterwards,
}
