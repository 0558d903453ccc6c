"""GET /me is kept per change version (changelog/pages.py): every change it shows gets
through at once, an unchanged answer is a 304, and without the cache the answers are the
same."""

import pytest

from guideapp import create_app
from tests.conftest import GUIDE, HQ, MANAGER, ApiClient, make_config


@pytest.fixture(params=["kept", "not kept"])
def me_api(request, database, connection):
    overrides = {} if request.param == "kept" else {"ME_CACHE_BYTES": 0}
    return ApiClient(create_app(make_config(database, **overrides), bind=connection).test_client())


def _me(api, phone, etag=None):
    headers = api.headers(phone, **({"If-None-Match": etag} if etag else {}))
    return api.client.get("/api/v1/me", headers=headers)


def test_an_unchanged_me_answers_304_and_each_change_gets_through(me_api):
    first = _me(me_api, GUIDE)
    assert first.status_code == 200 and first.headers["ETag"]
    me = first.get_json()
    etag = first.headers["ETag"]
    assert _me(me_api, GUIDE, etag).status_code == 304
    assert _me(me_api, GUIDE).get_json() == me

    renamed = me_api.patch(MANAGER, f"/api/v1/staff/{me['staff']['id']}", json={"name": "小林"})
    assert renamed.status_code == 200, renamed.get_json()
    after = _me(me_api, GUIDE, etag)
    assert after.status_code == 200 and after.get_json()["staff"]["name"] == "小林"
    assert after.headers["ETag"] != etag

    store_id = me["store"]["id"]
    tagged = me_api.patch(HQ, f"/api/v1/stores/{store_id}", json={"tags": ["outlet", "mall"]})
    assert tagged.status_code == 200, tagged.get_json()
    assert sorted(_me(me_api, GUIDE, after.headers["ETag"]).get_json()["store"]["tags"]) == [
        "mall",
        "outlet",
    ]


def test_a_guide_moved_to_another_store_sees_it_at_once(me_api):
    me = _me(me_api, GUIDE)
    stores = me_api.get(HQ, "/api/v1/stores?limit=50").get_json()["items"]
    other = next(s for s in stores if s["id"] != me.get_json()["store"]["id"])
    moved = me_api.patch(
        HQ, f"/api/v1/staff/{me.get_json()['staff']['id']}", json={"store_id": other["id"]}
    )
    assert moved.status_code == 200, moved.get_json()
    again = _me(me_api, GUIDE, me.headers["ETag"])
    assert again.status_code == 200 and again.get_json()["store"]["id"] == other["id"]


def test_each_login_sees_only_itself(me_api):
    guide, manager = _me(me_api, GUIDE), _me(me_api, MANAGER)
    assert guide.get_json()["staff"]["phone"] == GUIDE
    assert manager.get_json()["staff"]["phone"] == MANAGER
    # Another login's ETag is not this one's answer.
    assert _me(me_api, GUIDE, manager.headers["ETag"]).status_code == 200


def test_a_leaver_loses_me_at_once_even_when_kept(me_api):
    me = _me(me_api, GUIDE).get_json()
    assert me_api.post(MANAGER, f"/api/v1/staff/{me['staff']['id']}/leave").status_code == 200
    assert _me(me_api, GUIDE).status_code == 401
