"""Benchmark: WeCom's callback intake under wrk — 200 customers adding guides at once, every
callback a different customer, each signed and encrypted as WeCom does (tests/fake_wecom.py) —
beside a bare endpoint on the same gunicorn; every one stored, none lost, none doubled
(counted), retries stored once. Then processing: the stored events drained by the event job
(`flask wecom work`) with the fake WeCom answering, events/s."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bench.bench_scans import WRK_DONE, _load_demo, _server, run_wrk
from bench.common import emit, migrate, scratch_postgres
from guideapp.access import register_access_rules
from guideapp.config import PROJECT_ROOT
from guideapp.db import make_engine, transaction
from guideapp.org.models import Staff, Tenant
from guideapp.secretbox import SecretBox
from guideapp.wecom.models import WecomConfig, WecomEvent

SECRETS_KEY = "tGWJ3P0o6e8rZHX8eJ2p6lUvJ6a1pjQ3sV8mC0dP4kE="  # a Fernet key for the bench only
CORP, CONTACT_SECRET = "ww00000000000000be", "benchcontactsecret000000000000000000000000be"
TOKEN, AES_KEY = "benchToken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
PATH = "/api/v1/wecom/callback/stride"
LUA = """
local requests = {}
local threads = {}
tid = 0
function setup(thread) table.insert(threads, thread); thread:set("tid", #threads) end
function init(args)
  for line in io.lines("%(file)s") do
    local tab = line:find("\\t")
    table.insert(requests, {line:sub(1, tab - 1), line:sub(tab + 1)})
  end
  per = math.floor(#requests / %(threads)d)
  at = (tid - 1) * per
end
local sent = 0
request = function()
  local r = requests[at + (sent %% per) + 1]
  sent = sent + 1
  return wrk.format("POST", r[1], {["Content-Type"] = "text/xml"}, r[2])
end
"""  # + WRK_DONE, after formatting
BARE_LUA = WRK_DONE


def main(argv: list[str] | None = None) -> int:
    register_access_rules()
    args = _parse_args(argv)
    sys.path.insert(0, str(PROJECT_ROOT))
    from tests.fake_wecom import shared

    fake = shared()
    fake.reset()
    fake.add_corp(CORP, CONTACT_SECRET, 1000002, CONTACT_SECRET.replace("contact", "agentxx"))
    with scratch_postgres("bench_wecom") as url:
        migrate(url)
        engine = make_engine(url)
        try:
            _load_demo(engine)
            guides = _configure(engine, fake)
            with tempfile.TemporaryDirectory() as scratch:
                env = {
                    "GUIDEAPP_WECHAT_SECRETS_KEY": SECRETS_KEY,
                    "GUIDEAPP_WECOM_API_BASE": fake.url,
                    "GUIDEAPP_WECOM_CALLBACK_RATE": "1000000000",
                    "GUIDEAPP_JOBS_URL": f"sqlite:///{scratch}/jobs.db",
                    "GUIDEAPP_UPLOAD_DIR": f"{scratch}/uploads",
                }
                callbacks = _callbacks(fake, guides, args.events)
                requests_file = Path(scratch) / "callbacks.tsv"
                requests_file.write_text(
                    "".join(f"{path}\t{body}\n" for path, body in callbacks), encoding="utf-8"
                )
                with _server(url, args.workers, env=env) as port:
                    bare = _wrk_run(port, "/bench/bare", BARE_LUA, args)
                    intake = _wrk_run(
                        port,
                        "/",
                        LUA % {"file": requests_file, "threads": 2} + WRK_DONE,
                        args,
                    )
                    stored_after_load = _settled(engine)  # wrk stops with requests in flight
                    again = _stored_callbacks(engine, callbacks)[: args.customers]
                    retried = _retry(port, again, times=3)
                    stored_after_retries = _stored(engine)
                processing = _process(engine, url, env, scratch)
        finally:
            engine.dispose()
    distinct_sent = min(intake["requests"], len(callbacks))
    lost = max(0, distinct_sent - stored_after_load)
    doubled = stored_after_retries - stored_after_load
    ratio = round(intake["rps"] / bare["rps"], 3) if bare["rps"] else None
    errors = bare["errors"] + intake["errors"] + retried["errors"]
    emit(
        "wecom_callbacks",
        title="WeCom callback intake under load vs a bare endpoint; processing throughput",
        target="no errors, none lost, none doubled; intake >= 50% of the one-write floor "
        "(issue 20); processing events/s reported",
        met=errors == 0 and lost == 0 and doubled == 0,
        comparison=f"the callback URL serves {ratio:.0%} of the requests/s of a bare Flask "
        f"endpoint on the same gunicorn ({args.workers} sync workers)",
        rps_ratio=ratio,
        intake={k: intake[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        bare={k: bare[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        stored=stored_after_load,
        distinct_sent=distinct_sent,
        lost=lost,
        retries_sent=retried["requests"],
        doubled_by_retries=doubled,
        errors=errors,
        processing=processing,
        connections=args.connections,
        seconds_each=args.seconds,
    )
    return 0 if errors == 0 and lost == 0 and doubled == 0 else 1


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_wecom", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 s per endpoint instead of 10")
    parser.add_argument("--workers", type=int, default=min(3, max(2, os.cpu_count() or 2)))
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--customers", type=int, default=200, help="retried three times each")
    parser.add_argument("--events", type=int, default=None, help="distinct callbacks made")
    parser.add_argument("--seconds", type=int, default=None)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (5 if args.quick else 10)
    args.events = args.events or (6_000 if args.quick else 12_000)
    return args


def _configure(engine, fake) -> list[str]:
    """The demo brand's corp (sealed as HQ's PUT stores it) and its guides' WeCom ids."""
    box = SecretBox(SECRETS_KEY)
    with Session(engine) as session, transaction(session):
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.slug == "stride"))
        session.add(
            WecomConfig(
                tenant_id=tenant_id,
                corp_id=CORP,
                contact_secret=box.seal(CONTACT_SECRET),
                callback_token=box.seal(TOKEN),
                callback_aes_key=box.seal(AES_KEY),
            )
        )
        guides = session.scalars(
            select(Staff).where(Staff.tenant_id == tenant_id, Staff.role == "guide")
        ).all()
        userids = []
        for number, guide in enumerate(guides):
            guide.wecom_userid = f"guide{number:03d}"
            userids.append(guide.wecom_userid)
            fake.add_user(CORP, userid=guide.wecom_userid, name=guide.name)
        return userids


def _callbacks(fake, guides: list[str], count: int) -> list[tuple[str, str]]:
    """`count` customers each adding one of the guides (round robin), as WeCom posts them."""
    made = []
    for number in range(count):
        external = f"wmBench{number:010d}"
        fake.add_customer(CORP, external_userid=external, name=f"顾客{number}", unionid=None)
        fields = fake.customer_adds(CORP, guides[number % len(guides)], external, state=None)
        query, body = fake.callback(CORP, TOKEN, AES_KEY, fields)
        body = body.decode() if isinstance(body, bytes) else body
        path = f"{PATH}?{urlencode(query)}"
        made.append((path, body.replace("\n", "")))
    return made


def _wrk_run(port: int, path: str, lua: str, args) -> dict:
    return run_wrk(port, lua, args.connections, args.seconds, path)


def _retry(port: int, callbacks, *, times: int) -> dict:
    """WeCom's retries: callbacks already stored, again (WeCom resends the same message)."""
    conn, errors, sent = HTTPConnection("127.0.0.1", port, timeout=10), 0, 0
    for _ in range(times):
        for path, body in callbacks:
            conn.request("POST", path, body.encode(), {"Content-Type": "text/xml"})
            answer = conn.getresponse()
            errors += answer.read() != b"success"
            sent += 1
    conn.close()
    return {"requests": sent, "errors": errors}


def _stored_callbacks(engine, callbacks) -> list[tuple[str, str]]:
    """The callbacks whose events were stored (wrk's threads need not reach every one)."""
    with Session(engine) as session:
        stored = {f.get("ExternalUserID") for f in session.scalars(select(WecomEvent.fields))}
    return [c for n, c in enumerate(callbacks) if f"wmBench{n:010d}" in stored]


def _settled(engine, quiet_s: float = 2.0) -> int:
    """The stored count once it has stopped moving (the server finishes what wrk left)."""
    count, since = _stored(engine), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.2)
        now = _stored(engine)
        if now != count:
            count, since = now, time.monotonic()
    return count


def _stored(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(WecomEvent))


def _process(engine, url: str, env: dict, scratch: str) -> dict:
    """Drain every stored event with `flask wecom work` (a drain job per tenant, in-process)."""
    with Session(engine) as session, transaction(session):  # due now, whatever the backoff
        session.execute(update(WecomEvent).values(next_attempt_at=func.now()))
        pending = session.scalar(
            select(func.count()).select_from(WecomEvent).where(WecomEvent.state == "pending")
        )
    environment = {
        **os.environ,
        **env,
        "GUIDEAPP_DATABASE_URL": url,
        "GUIDEAPP_LOG_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "wecom", "work"],
        cwd=PROJECT_ROOT,
        env=environment,
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    with Session(engine) as session:
        states = dict(
            session.execute(select(WecomEvent.state, func.count()).group_by(WecomEvent.state)).all()
        )
    return {
        "events": pending,
        "seconds": round(seconds, 1),
        "events_per_s": round(pending / seconds, 1) if seconds else None,
        "states": states,
    }


if __name__ == "__main__":
    sys.exit(main())
