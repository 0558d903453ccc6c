"""`make load`'s scenario names real routes: each request name in bench/load_users.py
("POST /api/v1/tasks/[id]/assign") is a route of the app for that method.

The locustfile is read, not imported: importing locust patches the standard library with
gevent, which the test run must not get.
"""

import re

from werkzeug.exceptions import MethodNotAllowed, NotFound

from guideapp.config import PROJECT_ROOT

SCENARIO = PROJECT_ROOT / "bench" / "load_users.py"
REQUEST_NAME = re.compile(r'"(GET|POST|PATCH|DELETE) (/[^" ]*)')


def test_every_request_of_the_scenario_is_a_route(app):
    names = set(REQUEST_NAME.findall(SCENARIO.read_text(encoding="utf-8")))
    assert len(names) > 15  # guides, consumers, managers, HQ and the floor
    urls = app.url_map.bind("127.0.0.1")
    missing = []
    for method, name in sorted(names):
        if name.startswith("/bench/"):
            continue  # the floor: bench.bench_scans.make_app adds it to the app it serves
        path = re.sub(r"\[\w+\]", "x1", name)
        try:
            urls.match(path, method=method)
        except (NotFound, MethodNotAllowed):
            missing.append(f"{method} {name}")
    assert not missing, missing
