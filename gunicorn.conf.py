"""gunicorn settings `make run` uses (gunicorn also reads this file when started here).

The request limits are gunicorn's own and answered by gunicorn before the app runs, as plain
HTML/text: they sit above the app's limits (GUIDEAPP_MAX_URL_LENGTH 4096, JSON 414;
GUIDEAPP_MAX_BODY_BYTES, JSON 413) so that every too-long request the app can see gets the
API's JSON error, and only absurd ones meet gunicorn's. See README, "Limits".
"""

limit_request_line = 8190  # bytes of "GET <url> HTTP/1.1"; gunicorn's maximum (default 4094)
limit_request_fields = 100  # headers per request (gunicorn's default, stated)
limit_request_field_size = 8190  # bytes per header (gunicorn's default, stated)

import multiprocessing  # noqa: E402
import os  # noqa: E402

# Sync workers: 2 x cores + 1 (gunicorn's advice), unless GUIDEAPP_WEB_WORKERS or --workers
# says otherwise. Long work runs as jobs, so a request past `timeout` is a bug, killed.
workers = int(os.environ.get("GUIDEAPP_WEB_WORKERS") or multiprocessing.cpu_count() * 2 + 1)
timeout = int(os.environ.get("GUIDEAPP_WEB_TIMEOUT") or 30)
graceful_timeout = 30  # on HUP/TERM, requests in flight get this long to finish
keepalive = 5  # behind a proxy that reuses connections
# One line per request with the request id the app answers (and logs) under.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'


# No "Server: gunicorn/<version>" banner: gunicorn has no setting for the header it writes,
# so the name it writes is replaced here, once, before any worker answers.
import gunicorn.http.wsgi  # noqa: E402

gunicorn.http.wsgi.SERVER = "guideapp"


# Prometheus in multiprocess mode: each worker writes its counts to files in this directory
# and a scrape of any worker sums them (guideapp/http_metrics.py). Emptied at every start: a
# dead master's files would otherwise count forever.
import shutil  # noqa: E402

metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "instance", "prometheus"),
)


def on_starting(server):
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """The app's modules, mappers and metadata live as long as the worker: move them out of
    the garbage collector's sight so full collections walk only what requests made (a
    5,000-record sync push spent about a third of its CPU in full collections; bench_sync)."""
    import gc

    gc.collect()
    gc.freeze()
