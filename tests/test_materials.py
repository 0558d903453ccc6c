"""Material library through the API: targeting, validity, levels, uploads, ETags, shares."""

import hashlib
import io
import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from guideapp import create_app
from guideapp.db import transaction, utcnow
from guideapp.materials.models import Material, StoredUpload
from guideapp.storage import LocalStorage
from guideapp.errors import StorageFull
from guideapp.tasks.scheduler import tick
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE, ApiClient, make_config
from tests.factories import member_of, staff_by_phone, store_by_code
from tests.sync_phone import Phone

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _titles(api, phone, query=""):
    return [
        m["title"]
        for m in api.get(phone, f"/api/v1/materials?limit=200{query}").get_json()["items"]
    ]


def _material(api, phone=HQ, **fields):
    body = {
        "kind": "article",
        "title": "测试素材",
        "url": "https://mp.example.cn/a",
        "target": {"all": True},
        **fields,
    }
    response = api.post(phone, "/api/v1/materials", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_targeting_reaches_only_the_named_stores_and_regions(api, session):
    sh001 = store_by_code(session, "SH001")
    _material(api, title="只给上海001", target={"store_ids": [sh001.id]})
    assert "只给上海001" in _titles(api, GUIDE)
    assert "只给上海001" not in _titles(api, OTHER_GUIDE)
    assert "华东门店周末快闪活动" in _titles(api, GUIDE)  # region east
    assert "华东门店周末快闪活动" not in _titles(api, OTHER_GUIDE)  # Beijing is north
    bad = api.post(
        HQ,
        "/api/v1/materials",
        json={"kind": "text", "title": "x", "body": "y", "target": {"store_ids": ["nope"]}},
    )
    assert bad.status_code == 422 and "target" in bad.get_json()["errors"]


def test_validity_window_hides_expired_and_future_materials(api):
    now = utcnow()
    _material(api, title="未来", valid_from=(now + timedelta(days=1)).isoformat())
    _material(api, title="当前", valid_to=(now + timedelta(days=1)).isoformat())
    titles = _titles(api, GUIDE)
    assert "当前" in titles and "未来" not in titles and "双11预热文案(已过期)" not in titles
    hq_all = _titles(api, HQ, "&include_inactive=true")
    assert {"未来", "双11预热文案(已过期)"} <= set(hq_all)
    bad = api.post(
        HQ,
        "/api/v1/materials",
        json={
            "kind": "text",
            "title": "x",
            "body": "y",
            "target": {"all": True},
            "valid_from": now.isoformat(),
            "valid_to": (now - timedelta(days=1)).isoformat(),
        },
    )
    assert bad.status_code == 422 and "valid_to" in bad.get_json()["errors"]


def test_levels_decide_who_writes_and_who_sees(api):
    store_level = _material(api, MANAGER, title="店内陈列指南", level="store")
    personal = _material(api, GUIDE, title="我的话术图", level="personal")
    assert "店内陈列指南" in _titles(api, GUIDE) and "店内陈列指南" not in _titles(api, OTHER_GUIDE)
    assert "我的话术图" in _titles(api, GUIDE) and "我的话术图" not in _titles(api, MANAGER)
    assert (
        api.post(
            GUIDE,
            "/api/v1/materials",
            json={
                "kind": "text",
                "title": "x",
                "body": "y",
                "level": "hq",
                "target": {"all": True},
            },
        ).status_code
        == 403
    )
    assert (
        api.post(
            GUIDE,
            "/api/v1/materials",
            json={"kind": "text", "title": "x", "body": "y", "level": "store"},
        ).status_code
        == 403
    )
    assert store_level["owner_store_id"] and personal["owner_staff_id"]


def test_search_filters(api):
    found = _titles(api, GUIDE, "&q=跑鞋")
    assert found and all("跑鞋" in t for t in found)
    assert _titles(api, GUIDE, "&kind=product") == ["Stride Air 3 跑鞋"]
    assert _titles(api, GUIDE, "&tag=新品") == ["冬季新品跑鞋海报"]


def test_upload_limits_and_kinds(api):
    def upload(data, name):
        return api.client.post(
            "/api/v1/uploads",
            headers=api.headers(HQ),
            data={"file": (io.BytesIO(data), name)},
            content_type="multipart/form-data",
        )

    ok = upload(PNG, "poster.png")
    assert ok.status_code == 201 and ok.get_json()["content_type"] == "image/png"
    assert ok.get_json()["size"] == len(PNG)
    exe = upload(b"MZ\x90\x00" + b"\x00" * 60, "poster.png")  # the name lies; the bytes don't
    assert exe.status_code == 422 and "file" in exe.get_json()["errors"]
    huge = upload(PNG + b"\x00" * (10 << 20), "huge.png")
    assert huge.status_code == 422 and "10 MB" in huge.get_json()["message"]
    download = api.client.get(f"/api/v1/uploads/{ok.get_json()['id']}", headers=api.headers(GUIDE))
    assert download.data == PNG and download.mimetype == "image/png"
    no_file = api.post(
        HQ, "/api/v1/materials", json={"kind": "image", "title": "x", "target": {"all": True}}
    )
    assert no_file.status_code == 422 and "upload_id" in no_file.get_json()["errors"]


# A full disk, for real: /dev/full answers every write with ENOSPC. The file's place in the
# storage is content-addressed, so a link there to /dev/full is a disk that fills up as the
# upload is written (make faults does the same with a 1 MB tmpfs).


def test_an_upload_to_a_full_disk_is_a_503_and_leaves_nothing(database, connection, tmp_path):
    app = create_app(make_config(database, UPLOAD_DIR=str(tmp_path)), bind=connection)
    api = ApiClient(app.test_client())
    data = PNG + os.urandom(1024)
    checksum = hashlib.sha256(data).hexdigest()
    part = tmp_path / checksum[:2] / f"{checksum}.png.part"
    part.parent.mkdir()
    part.symlink_to("/dev/full")

    def upload():
        return api.client.post(
            "/api/v1/uploads",
            headers=api.headers(HQ),
            data={"file": (io.BytesIO(data), "poster.png")},
            content_type="multipart/form-data",
        )

    def uploads() -> int:
        with app.extensions["guideapp"]["sessionmaker"]() as session:
            return session.scalar(select(func.count()).select_from(StoredUpload))

    before = uploads()
    full = upload()
    assert full.status_code == 503, full.get_json()
    assert full.get_json() == {
        "code": 503,
        "status": "Service Unavailable",
        "message": StorageFull.default_message,
        "errors": {},
    }
    assert uploads() == before
    assert [p.name for p in tmp_path.rglob("*") if p.is_file() or p.is_symlink()] == []
    stored = upload()  # room again (the link is gone with the partial file): it is kept
    assert stored.status_code == 201, stored.get_json()
    assert (tmp_path / checksum[:2] / f"{checksum}.png").read_bytes() == data


def test_a_file_written_in_pieces_to_a_full_disk_leaves_no_scratch(tmp_path):
    storage = LocalStorage(tmp_path)
    with pytest.raises(StorageFull):
        with storage.writing(suffix=".csv") as new:
            new.path.symlink_to("/dev/full")
            with new.path.open("wb") as out:
                out.write(b"x" * 10_000)
                out.flush()
    assert list((tmp_path / "scratch").iterdir()) == []
    with pytest.raises(FileNotFoundError):  # an error other than a full disk stays itself
        with storage.writing(suffix=".csv") as new:
            (new.path.parent / "missing" / "file").open("rb")


def test_etag_protects_concurrent_edits(api):
    material = _material(api)
    url = f"/api/v1/materials/{material['id']}"
    etag = api.get(HQ, url).headers["ETag"]
    assert api.patch(HQ, url, json={"title": "无条件"}).status_code == 428
    first = api.client.patch(
        url, json={"title": "甲改"}, headers=api.headers(HQ, **{"If-Match": etag})
    )
    assert first.status_code == 200 and first.get_json()["version"] == 2
    stale = api.client.patch(
        url, json={"title": "乙改"}, headers=api.headers(HQ, **{"If-Match": etag})
    )
    assert stale.status_code == 412
    assert api.get(HQ, url).get_json()["title"] == "甲改"


def test_shares_are_counted_and_followed_by_orders(api, session):
    material = _material(api, title="分享统计")
    member = member_of(session, GUIDE)
    url = f"/api/v1/materials/{material['id']}/shares"
    first = api.post(
        GUIDE, url, json={"id": "share-1", "channel": "member", "member_id": member.id}
    )
    again = api.post(
        GUIDE, url, json={"id": "share-1", "channel": "member", "member_id": member.id}
    )
    assert first.status_code == again.status_code == 201
    api.post(GUIDE, url, json={"channel": "moments"})
    assert api.post(GUIDE, url, json={"channel": "member"}).status_code == 422
    order = {
        "channel": "pos",
        "order_no": "SHARE-1",
        "amount_fen": 19900,
        "phone": member.phone,
        "ordered_at": (utcnow() + timedelta(minutes=1)).isoformat(),
    }
    assert api.post(HQ, "/api/v1/orders", json=order).status_code == 200
    day = utcnow().date()
    span = f"start={day - timedelta(days=1)}&end={day + timedelta(days=1)}"
    rows = api.get(HQ, f"/api/v1/materials/stats?{span}&material_id={material['id']}").get_json()
    assert rows == [
        {
            "key": material["id"],
            "label": "分享统计",
            "shares": 2,
            "members": 1,
            "guides": 1,
            "followed_by_orders": 1,
        }
    ]
    by_guide = api.get(HQ, f"/api/v1/materials/stats?{span}&group_by=guide").get_json()
    me = staff_by_phone(session, GUIDE)
    assert any(r["key"] == me.id and r["shares"] >= 2 for r in by_guide)
    assert api.get(OTHER_GUIDE, f"/api/v1/materials/stats?{span}").get_json() == []


@pytest.mark.parametrize("version,expected", [(1, False), (2, True)])
def test_materials_sync_from_schema_version_2(api, version, expected):
    body = api.get(GUIDE, f"/api/v1/sync/pull?schema_version={version}").get_json()
    assert ("materials" in body["changes"]) is expected


def test_expired_or_retargeted_materials_leave_phones(api, session):
    soon = _material(api, title="马上过期", valid_to=(utcnow() + timedelta(minutes=5)).isoformat())
    moved = _material(api, title="将改投放")
    phone = Phone(api, GUIDE)
    phone.api = api
    _pull_v2(phone)
    assert {soon["id"], moved["id"]} <= set(phone.tables["materials"])
    tenant_id = staff_by_phone(session, HQ).tenant_id
    tick(session, tenant_id=tenant_id, now=utcnow() - timedelta(minutes=10))
    # Time passes: the material's window closes with no write at all...
    session.get(Material, soon["id"]).valid_to = utcnow() - timedelta(minutes=1)
    session.flush()
    with transaction(session):  # ...and the next tick logs the edge (stamped at commit)
        tick(session, tenant_id=tenant_id, now=utcnow())
    bj = store_by_code(session, "BJ001")
    url = f"/api/v1/materials/{moved['id']}"
    etag = api.get(HQ, url).headers["ETag"]
    api.client.patch(
        url, json={"target": {"store_ids": [bj.id]}}, headers=api.headers(HQ, **{"If-Match": etag})
    )
    deleted = _pull_v2(phone)
    assert moved["id"] in deleted
    assert soon["id"] in deleted


def _pull_v2(phone):
    url = f"/api/v1/sync/pull?last_pulled_at={phone.cursor or 'null'}&schema_version=2"
    body = phone.api.get(phone.number, url).get_json()
    while body.get("next_page"):
        more = phone.api.get(phone.number, url + f"&page={body['next_page']}").get_json()
        for table, ops in more["changes"].items():
            body["changes"][table]["updated"] += ops["updated"]
        body["next_page"] = more["next_page"]
    phone.tables.setdefault("materials", {})
    for record in body["changes"]["materials"]["updated"]:
        phone.tables["materials"][record["id"]] = record
    for record_id in body["changes"]["materials"]["deleted"]:
        phone.tables["materials"].pop(record_id, None)
    phone.cursor = body["timestamp"]
    return body["changes"]["materials"]["deleted"]


def test_shares_pushed_from_phones_count_once(api, session):
    material = _material(api, title="离线分享")
    phone = Phone(api, GUIDE)
    phone.pull()
    record = {
        "id": "offline-share-1",
        "material_id": material["id"],
        "channel": "moments",
        "shared_at": 1795000000000,
    }
    url = f"/api/v1/sync/push?last_pulled_at={phone.cursor}"
    for key in ("k1", "k2"):
        response = api.post(
            GUIDE,
            url,
            json={"changes": {"shares": {"created": [record], "updated": [], "deleted": []}}},
            headers={"Idempotency-Key": key},
        )
        assert response.status_code in (200, 409), response.get_json()
    day = utcnow().date()
    rows = api.get(
        HQ,
        f"/api/v1/materials/stats?start={day - timedelta(days=1)}"
        f"&end={day + timedelta(days=1)}&material_id={material['id']}",
    ).get_json()
    assert rows[0]["shares"] == 1
