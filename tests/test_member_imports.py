"""Bulk import of members and orders (CSV UTF-8 / BOM / GBK, .xlsx): row-level reports,
dry runs, idempotent re-imports, binding locks, payment is membership, money in fen."""

import io
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select

from guideapp.config import PROJECT_ROOT
from guideapp.db import utcnow
from guideapp.errors import InvalidInput
from guideapp.members import import_rows
from guideapp.members.imports import run_import
from guideapp.members.models import Binding, Member, Order, OrderRefund, PointsEntry
from guideapp.org.models import Tenant
from guideapp.changelog import ChangeLogEntry
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE
from tests.factories import member_of, staff_by_phone

SAMPLES = PROJECT_ROOT / "fixtures" / "imports"
MEMBERS_CSV = (SAMPLES / "members.csv").read_bytes()
ORDERS_CSV = (SAMPLES / "orders.csv").read_bytes()
EXISTING = "18524949613"  # a demo member without unionid


def upload(api, kind, content, filename, *, phone=HQ, dry_run=False):
    url = f"/api/v1/imports/{kind}?wait=true" + ("&dry_run=true" if dry_run else "")
    return api.client.post(
        url,
        data={"file": (io.BytesIO(content), filename)},
        headers=api.headers(phone),
        content_type="multipart/form-data",
    )


def tenant_id(session, slug="stride"):
    return session.scalar(select(Tenant.id).where(Tenant.slug == slug))


def do_import(session, kind, content, filename="import.csv", dry_run=False):
    return run_import(
        session,
        tenant_id=tenant_id(session),
        kind=kind,
        filename=filename,
        content=content,
        dry_run=dry_run,
    )


def csv_bytes(*lines, encoding="utf-8"):
    return ("\n".join(lines) + "\n").encode(encoding)


def member_by_phone(session, phone):
    return session.scalar(select(Member).where(Member.phone == phone))


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def errors_by_row(report):
    return {(e["row"], e["field"]) for e in report["errors"]}


def test_hq_imports_good_rows_and_gets_bad_ones_reported_by_row_and_field(api, session):
    response = upload(api, "members", MEMBERS_CSV, "members.csv")
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert {k: report[k] for k in ("kind", "dry_run", "rows", "imported", "updated", "failed")} == {
        "kind": "members",
        "dry_run": False,
        "rows": 9,
        "imported": 3,
        "updated": 1,
        "failed": 5,
    }
    assert errors_by_row(report) == {
        (5, "phone"),
        (6, "birthday"),
        (7, "guide_phone"),
        (8, "phone"),
        (10, "tier"),
        (10, "points"),
    }
    assert all(e["message"] for e in report["errors"])
    assert "row 2" in next(e["message"] for e in report["errors"] if e["row"] == 8)

    guide = staff_by_phone(session, GUIDE)
    lin = member_by_phone(session, "13512340001")
    assert (lin.name, lin.gender, lin.birthday, lin.tier) == (
        "林小雨",
        "female",
        date(1992, 5, 17),
        "gold",
    )
    assert lin.guide_id == guide.id and lin.store_id == guide.store_id and lin.stage == "fan"
    assert lin.joined_at == datetime(2025, 3, 1, 2, 0, tzinfo=timezone.utc)  # 10:00 Shanghai
    binding = session.scalar(select(Binding).where(Binding.member_id == lin.id))
    assert binding.reason == "import" and binding.locked_until > utcnow()
    opening = session.scalar(select(PointsEntry).where(PointsEntry.member_id == lin.id))
    assert (opening.kind, opening.points) == ("adjust", 1200)
    assert opening.reason == "opening balance (import)"
    scopes = set(
        session.scalars(
            select(ChangeLogEntry.scope).where(
                ChangeLogEntry.record_id == lin.id, ChangeLogEntry.table_name == "members"
            )
        )
    )
    assert scopes == {f"g:{guide.id}", f"s:{guide.store_id}"}
    pooled = member_by_phone(session, "13512340003")
    assert pooled.guide_id is None and pooled.store_id is not None
    for bad in ("12345", "13512340005", "13512340006", "13512340009"):
        assert member_by_phone(session, bad) is None


def test_existing_members_are_filled_never_blanked(session):
    before = member_by_phone(session, EXISTING)
    name, birthday, guide_id = before.name, before.birthday, before.guide_id
    content = csv_bytes(
        "phone,name,unionid,birthday,gender",
        f"{EXISTING},,oFilled0001,,",
        f"{member_of(session, GUIDE).phone},别的名字,,,",
    )
    report = do_import(session, "members", content)
    assert (report["imported"], report["updated"], report["failed"]) == (0, 1, 0)
    after = member_by_phone(session, EXISTING)
    assert after.unionid == "oFilled0001"
    assert (after.name, after.birthday, after.guide_id) == (name, birthday, guide_id)
    assert member_of(session, GUIDE).name != "别的名字"


def test_dry_run_writes_nothing_and_reports_the_same(api, session):
    models = (Member, Binding, PointsEntry, ChangeLogEntry)
    api.headers(HQ)  # log in first: the login writes rows of its own
    before = [count(session, m) for m in models]
    dry = upload(api, "members", MEMBERS_CSV, "members.csv", dry_run=True).get_json()
    assert [count(session, m) for m in models] == before
    real = upload(api, "members", MEMBERS_CSV, "members.csv").get_json()
    assert dry["dry_run"] is True and real["dry_run"] is False
    assert {**dry, "dry_run": False} == real
    assert count(session, Member) == before[0] + 3


def test_reimport_is_idempotent(session):
    first = do_import(session, "members", MEMBERS_CSV)
    members, bindings = count(session, Member), count(session, Binding)
    again = do_import(session, "members", MEMBERS_CSV)
    assert first["imported"] == 3
    assert (again["imported"], again["updated"], again["failed"]) == (0, 0, 5)
    assert (count(session, Member), count(session, Binding)) == (members, bindings)


def test_xlsx_with_typed_cells(session):
    content = (SAMPLES / "members.xlsx").read_bytes()
    report = do_import(session, "members", content, "members.xlsx")
    assert (report["rows"], report["imported"], report["failed"]) == (3, 2, 1)
    assert errors_by_row(report) == {(4, "birthday")}
    first = member_by_phone(session, "13512350001")  # a number cell in Excel
    assert first.birthday == date(1991, 2, 3) and first.gender == "male"
    assert first.joined_at == datetime(2025, 4, 1, 1, 30, tzinfo=timezone.utc)
    assert first.guide_id == staff_by_phone(session, GUIDE).id
    assert member_by_phone(session, "13512350002").birthday == date(1985, 12, 24)


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "utf-8"])
def test_csv_encodings(session, encoding):
    content = csv_bytes(
        "手机号,姓名,性别,生日,会员等级", "13512360001,王小明,男,2001/2/3,银卡", encoding=encoding
    )
    report = do_import(session, "members", content, "会员.CSV")
    assert (report["imported"], report["failed"]) == (1, 0), report["errors"]
    member = member_by_phone(session, "13512360001")
    assert (member.name, member.gender, member.birthday, member.tier) == (
        "王小明",
        "male",
        date(2001, 2, 3),
        "silver",
    )


def test_tenants_stay_apart(session):
    rival_phone = "13612340000"  # a member of the rival tenant
    report = do_import(session, "members", csv_bytes("phone,name", f"{rival_phone},新会员"))
    assert report["imported"] == 1
    owners = session.scalars(select(Member.tenant_id).where(Member.phone == rival_phone)).all()
    assert sorted(owners) == sorted([tenant_id(session), tenant_id(session, "rival")])
    rival_guide = do_import(
        session, "members", csv_bytes("phone,guide_phone", "13512390001,13700000003")
    )
    assert errors_by_row(rival_guide) == {(2, "guide_phone")}


def test_split_identities_are_reported_and_phones_never_overwritten(session):
    do_import(
        session,
        "members",
        csv_bytes("phone,unionid", "13512391001,oSplit01", "13512391002,oSplit02"),
    )
    split = do_import(session, "members", csv_bytes("phone,unionid", "13512391001,oSplit02"))
    assert errors_by_row(split) == {(2, "unionid")} and "merge" in split["errors"][0]["message"]
    report = do_import(
        session,
        "members",
        csv_bytes("phone,unionid,name", "13512391003,oSplit01,乙", "13512391001,,丙"),
    )
    assert errors_by_row(report) == {(3, "phone")} and "row 2" in report["errors"][0]["message"]
    found = member_by_phone(session, "13512391001")  # by unionid in row 2: named, phone kept
    assert (found.unionid, found.name) == ("oSplit01", "乙")
    assert member_by_phone(session, "13512391003") is None


def test_a_buyer_found_by_unionid_learns_the_phone(session):
    do_import(session, "members", csv_bytes("unionid,name", "oLearn0001,只有微信"))
    report = do_import(
        session,
        "orders",
        csv_bytes(
            "渠道,订单号,金额,下单时间,手机号,unionid",
            "小程序,MP-1,9.9,2025-08-01,13512392001,oLearn0001",
        ),
    )
    assert report["imported"] == 1
    member = session.scalar(select(Member).where(Member.unionid == "oLearn0001"))
    assert member.phone == "13512392001" and member.phone_tail == "2001"
    assert member.stage == "customer" and member.source_channel == "import"


def test_binding_lock_is_respected_not_stolen(session):
    member = member_of(session, GUIDE)
    member.binding_locked_until = utcnow().replace(year=utcnow().year + 1)  # lock running
    session.flush()
    name = member.name
    content = csv_bytes("手机号,姓名,导购手机号", f"{member.phone},,{OTHER_GUIDE}")
    report = do_import(session, "members", content)
    assert report["failed"] == 1 and report["updated"] == 0
    error = report["errors"][0]
    assert (error["row"], error["field"]) == (2, "guide_phone") and "导购会员锁" in error["message"]
    session.refresh(member)
    assert member.guide_id == staff_by_phone(session, GUIDE).id and member.name == name


def test_expired_lock_rebinds_with_history(session):
    member = member_of(session, GUIDE)
    member.binding_locked_until = datetime(2020, 1, 1, tzinfo=timezone.utc)
    session.flush()
    other = staff_by_phone(session, OTHER_GUIDE)
    report = do_import(
        session, "members", csv_bytes("phone,guide_phone", f"{member.phone},{OTHER_GUIDE}")
    )
    assert (report["updated"], report["failed"]) == (1, 0)
    session.refresh(member)
    assert member.guide_id == other.id and member.store_id == other.store_id
    history = session.scalars(
        select(Binding).where(Binding.member_id == member.id).order_by(Binding.started_at)
    ).all()
    assert history[-1].guide_id == other.id and history[-1].ended_at is None
    assert all(b.ended_at is not None for b in history[:-1])


def test_orders_payment_is_membership_and_amounts_in_fen(api, session):
    before = count(session, Member)
    report = upload(api, "orders", ORDERS_CSV, "orders.csv").get_json()
    assert (report["rows"], report["imported"], report["updated"], report["failed"]) == (9, 3, 0, 6)
    assert errors_by_row(report) == {
        (5, "amount"),
        (6, "store_code"),
        (7, "channel"),
        (8, "order_no"),
        (9, "refund_amount"),
        (10, "phone"),
    }
    order = session.scalar(select(Order).where(Order.order_no == "TM20250001"))
    assert order.amount_fen == 19990 and order.channel == "tmall"
    assert session.scalar(select(Order.amount_fen).where(Order.order_no == "JD0001")) == 5990
    buyer = session.scalar(select(Member).where(Member.unionid == "oNewBuyer0001"))
    assert buyer.source_channel == "jd" and buyer.stage == "customer"
    assert buyer.last_order_at == datetime(2025, 7, 1, 16, tzinfo=timezone.utc)
    assert count(session, Member) == before + 2  # 13512340002 and the unionid buyer
    existing = member_by_phone(session, EXISTING)
    assert existing.last_order_at >= datetime(2025, 7, 1, 6, 30, tzinfo=timezone.utc)
    again = upload(api, "orders", ORDERS_CSV, "orders.csv").get_json()
    assert (again["imported"], again["updated"], again["failed"]) == (0, 0, 6)
    assert count(session, Member) == before + 2


def test_a_later_refund_is_an_update_and_a_changed_amount_an_error(session):
    header = "channel,order_no,amount,ordered_at,phone,refund_amount"
    do_import(session, "orders", csv_bytes(header, 'pos,R-1,"¥1,299.00",2025-05-01,13512370001,'))
    refunded = do_import(
        session, "orders", csv_bytes(header, "pos,R-1,1299,2025-05-01,13512370001,300.5")
    )
    assert (refunded["imported"], refunded["updated"], refunded["failed"]) == (0, 1, 0)
    order = session.scalar(select(Order).where(Order.order_no == "R-1"))
    session.refresh(order)
    assert (order.amount_fen, order.refunded_fen) == (129900, 30050)
    assert (
        session.scalar(select(OrderRefund.amount_fen).where(OrderRefund.order_id == order.id))
        == 30050
    )
    changed = do_import(
        session, "orders", csv_bytes(header, "pos,R-1,1300,2025-05-01,13512370001,300.5")
    )
    assert changed["failed"] == 1 and "1299.00" in changed["errors"][0]["message"]


def test_only_hq_imports(api):
    assert upload(api, "members", MEMBERS_CSV, "members.csv", phone=MANAGER).status_code == 403


def test_unknown_kind_and_unsupported_file_are_422(api):
    unknown = upload(api, "coupons", MEMBERS_CSV, "members.csv")
    assert unknown.status_code == 422 and "kind" in unknown.get_json()["errors"]
    pdf = upload(api, "members", b"%PDF-1.4 ...", "members.pdf")
    body = pdf.get_json()
    assert pdf.status_code == 422 and "file" in body["errors"]
    assert ".csv" in body["message"] and ".xlsx" in body["message"] and "GBK" in body["message"]
    broken = upload(api, "members", b"not a zip", "members.xlsx")
    assert broken.status_code == 422 and "xlsx" in broken.get_json()["message"]


def test_missing_columns_are_named(api):
    response = upload(
        api, "orders", csv_bytes("渠道,订单号,手机号", "pos,A1,13512380001"), "orders.csv"
    )
    message = response.get_json()["message"]
    assert response.status_code == 422
    assert "金额/amount" in message and "下单时间/ordered_at" in message
    assert "渠道" not in message.replace("Missing required columns", "")


def test_empty_files_are_refused(session):
    for content in (b"", b"\xef\xbb\xbf\n\n", csv_bytes("phone,name")):
        with pytest.raises(InvalidInput) as caught:
            do_import(session, "members", content)
        assert caught.value.errors == {"file": [caught.value.message]}


@pytest.mark.parametrize(
    "raw,fen",
    [("199.90", 19990), ("199.9", 19990), (199.9, 19990), ("¥1,299", 129900), ("0", 0), (12, 1200)],
)
def test_yuan_to_fen_with_decimal(raw, fen):
    assert import_rows.yuan(raw) == fen


@pytest.mark.parametrize("raw", ["19.999", "-1", "abc", "1e400"])
def test_bad_amounts(raw):
    with pytest.raises(import_rows.CellError):
        import_rows.yuan(raw)


# --- every row accounted for; fill or overwrite (issue 14) ------------------------------


def accounted(report) -> bool:
    """imported + updated + unchanged + failed == rows, and every unchanged row says why."""
    total = report["imported"] + report["updated"] + report["unchanged"] + report["failed"]
    noted = {n["row"] for n in report["notes"]}
    failed = {e["row"] for e in report["errors"]}
    return (
        total == report["rows"]
        and len(failed) == report["failed"]
        and (report["unchanged"] <= len(noted - failed))
    )


def test_every_row_is_imported_updated_unchanged_or_failed(api, session):
    named = member_of(session, GUIDE)
    content = csv_bytes(
        "phone,name,unionid,tier",
        f"{EXISTING},,oFilled0002,",  # fills the unionid: updated
        f"{named.phone},别的名字,,normal",  # fill-blanks keeps the name: unchanged, and why
    )
    report = upload(api, "members", content, "members.csv").get_json()
    assert (report["rows"], report["imported"], report["updated"], report["unchanged"]) == (
        2,
        0,
        1,
        1,
    )
    assert report["failed"] == 0 and accounted(report)
    notes = {(n["row"], n["field"]) for n in report["notes"]}
    assert (3, "name") in notes
    message = next(n["message"] for n in report["notes"] if n["row"] == 3)
    assert "overwrite" in message and named.name in message
    for kind, content, name in (
        ("members", MEMBERS_CSV, "members.csv"),
        ("orders", ORDERS_CSV, "orders.csv"),
    ):
        for _ in range(2):  # the second time every good row is a replay: unchanged, noted
            again = upload(api, kind, content, name).get_json()
            assert accounted(again), again
    assert again["unchanged"] == 3 and {n["row"] for n in again["notes"]} == {2, 3, 4}


def test_overwrite_replaces_values_but_never_identities_nor_blanks(api, session):
    do_import(
        session,
        "members",
        csv_bytes("phone,name,unionid,tier,birthday", "13512396001,甲,oOwn0001,gold,1990-01-01"),
    )
    content = csv_bytes("phone,name,unionid,tier,birthday", "13512396001,乙,oOther0001,silver,")
    kept = upload(api, "members", content, "members.csv").get_json()
    assert (kept["mode"], kept["updated"], kept["unchanged"]) == ("fill", 0, 1)
    assert {n["field"] for n in kept["notes"]} == {"name", "tier", "unionid"}
    overwrite = api.client.post(
        "/api/v1/imports/members?mode=overwrite&wait=true",
        data={"file": (io.BytesIO(content), "members.csv")},
        headers=api.headers(HQ),
        content_type="multipart/form-data",
    ).get_json()
    assert (overwrite["mode"], overwrite["updated"], overwrite["unchanged"]) == ("overwrite", 1, 0)
    assert accounted(overwrite) and {n["field"] for n in overwrite["notes"]} == {"unionid"}
    member = member_by_phone(session, "13512396001")
    session.refresh(member)
    assert (member.name, member.tier) == ("乙", "silver")  # replaced; a tier may fall
    assert member.unionid == "oOwn0001"  # an identity is never replaced
    assert member.birthday == date(1990, 1, 1)  # an empty cell blanks nothing
    orders = api.client.post(
        "/api/v1/imports/orders?mode=overwrite&wait=true",
        data={"file": (io.BytesIO(ORDERS_CSV), "orders.csv")},
        headers=api.headers(HQ),
        content_type="multipart/form-data",
    )
    assert orders.status_code == 422 and "mode" in orders.get_json()["errors"]


def test_an_imported_order_names_a_nameless_buyer_and_homes_a_new_one(api, session):
    do_import(session, "members", csv_bytes("phone", "13512393001"))  # no name, no store
    content = csv_bytes(
        "渠道,订单号,金额,下单时间,门店编码,手机号,姓名",
        "pos,IMP-1,10,2025-08-01,SH001,13512393001,赵六",
        "pos,IMP-2,10,2025-08-01,SH001,13512393002,钱七",
    )
    report = upload(api, "orders", content, "orders.csv").get_json()
    assert (report["imported"], report["failed"]) == (2, 0), report
    sh001 = session.scalar(select(Order.store_id).where(Order.order_no == "IMP-1"))
    for phone, name in (("13512393001", "赵六"), ("13512393002", "钱七")):
        member = member_by_phone(session, phone)
        assert (member.name, member.store_id, member.guide_id) == (name, sh001, None)
        assert api.get(MANAGER, f"/api/v1/members/{member.id}/card").status_code == 200


@pytest.mark.parametrize(
    "when", ["1900-01-01", "0001-01-01 00:00", "2030-01-01 10:00", "9999-12-31 23:59"]
)
def test_imported_orders_dated_in_the_future_or_long_ago_are_failed_rows(session, when):
    report = do_import(
        session,
        "orders",
        csv_bytes("渠道,订单号,金额,下单时间,手机号", f"pos,OLD-1,10,{when},13512394001"),
    )
    assert (report["imported"], report["failed"]) == (0, 1) and accounted(report)
    assert errors_by_row(report) == {(2, "ordered_at")}
    assert member_by_phone(session, "13512394001") is None


# --- bounded files: rows and what an .xlsx inflates to ----------------------------------


@pytest.fixture
def small_api(database, connection):
    from guideapp import create_app
    from tests.conftest import ApiClient, make_config

    config = make_config(database, IMPORT_MAX_ROWS=3, IMPORT_MAX_XLSX_MB=1)
    return ApiClient(create_app(config, bind=connection).test_client())


def inflating_xlsx(megabytes: int, rows: int = 1) -> bytes:
    """A valid members workbook whose sheet is padded with whitespace: it compresses ~1000:1,
    like the 310 KB file that inflated to 300 MB."""
    import zipfile

    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["phone", "name"])
    for i in range(rows):
        book.active.append([f"135124{i:05d}", "膨胀"])
    plain = io.BytesIO()
    book.save(plain)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(plain.getvalue())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst,
    ):
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename != "xl/worksheets/sheet1.xml":
                dst.writestr(info, data)
                continue
            head, tail = data.split(b"<sheetData>")
            with dst.open(info.filename, "w", force_zip64=True) as sheet:
                sheet.write(head + b"<sheetData>")
                for _ in range(megabytes):
                    sheet.write(b" " * (1 << 20))
                sheet.write(tail)
    return out.getvalue()


_BOMB = {}


def test_an_xlsx_that_inflates_past_the_limit_is_413_before_it_is_read(api, small_api, session):
    members = count(session, Member)
    small = inflating_xlsx(3)
    assert len(small) < 50_000
    refused = upload(small_api, "members", small, "members.xlsx")
    assert refused.status_code == 413, refused.get_json()
    assert "file" in refused.get_json()["errors"] and "MB" in refused.get_json()["message"]
    assert upload(api, "members", small, "members.xlsx").status_code == 200  # default: 100 MB
    if "bomb" not in _BOMB:
        _BOMB["bomb"] = inflating_xlsx(300)  # 310 KB on disk, 300 MB inflated
    assert len(_BOMB["bomb"]) < 400_000
    bomb = upload(api, "members", _BOMB["bomb"], "members.xlsx")
    assert bomb.status_code == 413, bomb.get_json()
    assert count(session, Member) == members + 1  # only the small one's row


def test_a_file_with_too_many_rows_is_413_and_writes_nothing(small_api, session):
    members = count(session, Member)
    content = csv_bytes("phone", *(f"135123950{i:02d}" for i in range(4)))
    refused = upload(small_api, "members", content, "members.csv")
    assert refused.status_code == 413 and "3 rows" in refused.get_json()["message"]
    workbook = upload(small_api, "members", inflating_xlsx(0, rows=4), "members.xlsx")
    assert workbook.status_code == 413
    fits = upload(small_api, "members", csv_bytes("phone", "13512395100"), "members.csv")
    assert fits.status_code == 200 and count(session, Member) == members + 1
