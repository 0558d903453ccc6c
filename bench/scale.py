"""A tenant at real-brand scale (4,000 stores, 40,000 guides, 1M members) from set-based SQL."""

from __future__ import annotations

import argparse
import hashlib
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

from psycopg.types.numeric import Int8
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from guideapp.passwords import hash_password
from guideapp.db import make_engine, transaction
from guideapp.org.service import create_tenant

PASSWORD = "demo-pass-2026"
REGIONS = [
    ("east", "华东"),
    ("north", "华北"),
    ("south", "华南"),
    ("central", "华中"),
    ("southwest", "西南"),
    ("northwest", "西北"),
    ("northeast", "东北"),
    ("west", "西部"),
]
CITIES = [
    "上海",
    "北京",
    "广州",
    "深圳",
    "杭州",
    "南京",
    "成都",
    "重庆",
    "武汉",
    "西安",
    "苏州",
    "天津",
    "长沙",
    "郑州",
    "青岛",
    "沈阳",
    "昆明",
    "厦门",
    "合肥",
    "福州",
]
SURNAMES = [
    "王",
    "李",
    "张",
    "刘",
    "陈",
    "杨",
    "黄",
    "赵",
    "吴",
    "周",
    "徐",
    "孙",
    "马",
    "朱",
    "胡",
    "郭",
    "何",
    "林",
    "罗",
    "高",
]
GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "洋",
    "艳",
    "勇",
    "军",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "霞",
    "平",
    "刚",
    "桂英",
    "欣",
    "悦",
    "婷",
    "晨",
    "宇",
    "浩",
    "雪",
    "琳",
]
# Weighted by repetition: POS gets half the orders.
ORDER_CHANNELS = (
    ["pos"] * 10
    + ["tmall"] * 3
    + ["jd"] * 2
    + ["douyin"] * 2
    + ["brand_mall"] * 2
    + ["mini_program"]
)
SOURCE_CHANNELS = [
    "store_scan",
    "pos",
    "tmall",
    "jd",
    "douyin",
    "brand_mall",
    "mini_program",
    "import",
]
PRODUCTS = [
    ("跑鞋 Stride Air", 69900),
    ("速干T恤", 12900),
    ("篮球鞋 Court 2", 89900),
    ("瑜伽裤", 29900),
    ("冲锋衣", 99900),
    ("运动袜 3双装", 4900),
]
TAG_GROUPS = {
    "运动偏好": ["跑步", "篮球", "瑜伽", "户外", "健身", "网球", "骑行", "游泳"],
    "尺码": ["XS", "S", "M", "L", "XL", "XXL", "36-38码", "39-41码"],
    "消费偏好": ["新品", "折扣", "联名款", "经典款", "礼品", "会员日", "直播", "团购"],
    "渠道来源": ["海报", "小票", "桌贴", "包裹卡", "短信", "AI外呼", "朋友推荐", "商场活动"],
}


@dataclass
class ScaleTenant:
    """What benchmarks need to find their way into the generated tenant."""

    tenant_id: str
    slug: str
    key: str
    stores: int
    guides_per_store: int
    members: int
    heavy_guide_members: int
    counts: dict = field(default_factory=dict)
    timings_s: dict = field(default_factory=dict)

    def store_id(self, index: int) -> str:
        return _md5(f"{self.key}/s/{index}")

    def guide_id(self, index: int) -> str:
        return _md5(f"{self.key}/g/{index}")

    def member_id(self, n: int) -> str:
        return _md5(f"{self.key}/m/{n}")

    @property
    def heavy_guide_id(self) -> str:
        """Guide 0 of store 0: the same member count whatever the tenant's size."""
        return self.guide_id(0)

    def tag_id(self, group: int, index: int) -> str:
        return _md5(f"{self.key}/tag/{group}/{index}")


def find_scale_tenant(engine: Engine, *, slug: str = "scale", seed: int = 1) -> ScaleTenant | None:
    """The tenant an earlier generate_scale_tenant() left in this database, if any."""
    with engine.connect() as conn:
        tenant_id = conn.execute(
            text("SELECT id FROM tenants WHERE slug = :slug"), {"slug": slug}
        ).scalar()
        if tenant_id is None:
            return None
        counts = conn.execute(
            text("""
            SELECT (SELECT count(*) FROM stores WHERE tenant_id = :t),
                   (SELECT count(*) FROM staff WHERE tenant_id = :t AND role = 'guide'),
                   (SELECT count(*) FROM members WHERE tenant_id = :t)"""),
            {"t": tenant_id},
        ).one()
        key = f"{slug}:{seed}"
        heavy = conn.execute(
            text("SELECT count(*) FROM members WHERE guide_id = :g"), {"g": _md5(f"{key}/g/0")}
        ).scalar_one()
    stores, guides, members = counts
    return ScaleTenant(
        tenant_id=tenant_id,
        slug=slug,
        key=key,
        stores=stores,
        guides_per_store=guides // max(1, stores),
        members=members,
        heavy_guide_members=heavy,
    )


def _md5(value: str) -> str:
    return hashlib.md5(value.encode()).hexdigest()


def _u32(column: str, index: int) -> str:
    """SQL: the index-th unsigned 32-bit integer of a hex md5 column (0..3)."""
    return f"('x' || substr({column}, {1 + 8 * index}, 8))::bit(32)::bigint"


def _pick(array: list[str], expr: str) -> str:
    """SQL: an element of a literal text array chosen by a non-negative integer expr."""
    literal = "ARRAY[" + ", ".join("'" + a.replace("'", "''") + "'" for a in array) + "]"
    return f"({literal})[1 + ({expr}) % {len(array)}]"


def generate_scale_tenant(
    engine: Engine,
    *,
    stores: int = 4000,
    guides_per_store: int = 10,
    members: int = 1_000_000,
    seed: int = 1,
    slug: str = "scale",
    heavy_guide_members: int = 2000,
    verbose: bool = True,
) -> ScaleTenant:
    """Generate one tenant on PostgreSQL with INSERT ... SELECT only; then VACUUM ANALYZE."""
    tenant_id = _create_tenant(engine, slug)
    scale = ScaleTenant(
        tenant_id=tenant_id,
        slug=slug,
        key=f"{slug}:{seed}",
        stores=stores,
        guides_per_store=guides_per_store,
        members=members,
        heavy_guide_members=min(heavy_guide_members, members),
    )
    params = {
        "t": tenant_id,
        "k": scale.key,
        "stores": stores,
        "gps": guides_per_store,
        "members": members,
        "now": datetime.now(timezone.utc),
        "stride": max(1, members // max(1, scale.heavy_guide_members)),
    }
    started = time.perf_counter()
    with engine.connect() as conn:
        _tune_session(conn)
        params["phone_offset"] = _staff_phone_offset(conn)
        for name, step in _STEPS:
            with _timed(scale, name, verbose):
                scale.counts[name] = step(conn, params)
                conn.commit()
        conn.execute(text("DROP TABLE IF EXISTS scale_members"))
        conn.commit()
    with _timed(scale, "vacuum_analyze", verbose):
        _vacuum_analyze(engine)
    scale.timings_s["total"] = round(time.perf_counter() - started, 1)
    if verbose:
        print(f"  {'total':<16}{'':>12}{scale.timings_s['total']:>8.1f} s", flush=True)
    return scale


def _create_tenant(engine: Engine, slug: str) -> str:
    with Session(engine) as session, transaction(session):
        tenant = create_tenant(
            session, slug=slug, name=f"Scale Sportswear ({slug})", timezone="Asia/Shanghai"
        )
        return tenant.id


def _tune_session(conn: Connection) -> None:
    """Bulk-load settings for this connection only; the server's configuration is untouched."""
    conn.execute(text("SET synchronous_commit = off"))
    conn.execute(text("SET work_mem = '256MB'"))
    conn.execute(text("SET temp_buffers = '1GB'"))  # the member plan stays in memory
    if conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar():
        # Skip per-row foreign-key triggers: every id is derived from the same keys, and
        # a run with them on (a non-superuser URL) checks that the data is consistent.
        conn.execute(text("SET session_replication_role = replica"))
    conn.commit()


def _staff_phone_offset(conn: Connection) -> int:
    """Staff phones are unique across tenants: continue after the highest '15…' phone."""
    return conn.execute(
        text(
            "SELECT coalesce(max(substr(phone, 3)::bigint) + 1, 0) FROM staff "
            "WHERE phone ~ '^15[0-9]{9}$'"
        )
    ).scalar_one()


@contextmanager
def _timed(scale: ScaleTenant, name: str, verbose: bool):
    started = time.perf_counter()
    yield
    seconds = round(time.perf_counter() - started, 1)
    scale.timings_s[name] = seconds
    if verbose:
        rows = scale.counts.get(name)
        rows_text = f"{rows:>12,}" if isinstance(rows, int) else f"{'':>12}"
        print(f"  {name:<16}{rows_text}{seconds:>8.1f} s", flush=True)


def _run(conn: Connection, sql: str, params: dict) -> int:
    # psycopg sends small ints as smallint; generate_series arithmetic must not overflow.
    params = {k: Int8(v) if type(v) is int else v for k, v in params.items()}
    return conn.execute(text(sql), params).rowcount


def _brand_and_regions(conn: Connection, p: dict) -> int:
    _run(
        conn,
        "INSERT INTO brands (id, tenant_id, code, name) "
        "VALUES (md5(:k || '/brand'), :t, 'scale', 'Scale Sportswear')",
        p,
    )
    codes = _pick([c for c, _ in REGIONS], "r")
    names = _pick([n for _, n in REGIONS], "r")
    return 1 + _run(
        conn,
        f"""
        INSERT INTO regions (id, tenant_id, brand_id, code, name)
        SELECT md5(:k || '/r/' || r), :t, md5(:k || '/brand'), {codes}, {names}
        FROM generate_series(0, {len(REGIONS) - 1}) r""",
        p,
    )


def _stores(conn: Connection, p: dict) -> int:
    city = _pick(CITIES, _u32("h", 3))
    return _run(
        conn,
        f"""
        INSERT INTO stores (id, tenant_id, brand_id, region_id, code, name, city, address, phone,
                            lat, lng, service_radius_m, state, opening_hours, created_at,
                            updated_at)
        SELECT md5(:k || '/s/' || s), :t, md5(:k || '/brand'),
               md5(:k || '/r/' || (s % {len(REGIONS)})), 'S' || lpad(s::text, 5, '0'),
               city || '门店' || s, city, city || '中山路' || (s % 900 + 1) || '号',
               '400' || lpad(s::text, 7, '0'),
               20 + 25 * ({_u32("h", 0)} / 4294967296.0),
               100 + 22 * ({_u32("h", 1)} / 4294967296.0),
               3000 + 1000 * ({_u32("h", 2)} % 5),
               CASE WHEN {_u32("h", 2)} % 50 = 7 THEN 'closed' ELSE 'open' END,
               '{{}}'::json, :now, :now
        FROM (SELECT s, h, {city} AS city
              FROM (SELECT s, md5(:k || '/sh/' || s) AS h
                    FROM generate_series(0, :stores - 1) s) raw) x""",
        p,
    )


def _staff(conn: Connection, p: dict) -> int:
    p = {**p, "pw": hash_password(PASSWORD)}  # one hash for all: Argon2 is slow on purpose
    columns = (
        "id, tenant_id, store_id, role, name, phone, password_hash, state, created_at, updated_at"
    )
    managers = _run(
        conn,
        f"""
        INSERT INTO staff ({columns})
        SELECT md5(:k || '/mgr/' || s), :t, md5(:k || '/s/' || s), 'store_manager',
               '店长' || s, '15' || lpad((:phone_offset + s)::text, 9, '0'), :pw, 'active',
               :now, :now
        FROM generate_series(0, :stores - 1) s""",
        p,
    )
    guides = _run(
        conn,
        f"""
        INSERT INTO staff ({columns})
        SELECT md5(:k || '/g/' || g), :t, md5(:k || '/s/' || (g / :gps)), 'guide',
               '导购' || g, '15' || lpad((:phone_offset + :stores + g)::text, 9, '0'), :pw,
               'active', :now, :now
        FROM generate_series(0, :stores * :gps - 1) g""",
        p,
    )
    hq = _run(
        conn,
        f"""
        INSERT INTO staff ({columns})
        VALUES (md5(:k || '/hq'), :t, NULL, 'hq_admin', '总部运营',
                '15' || lpad((:phone_offset + :stores * (1 + :gps))::text, 9, '0'), :pw,
                'active', :now, :now)""",
        p,
    )
    return managers + guides + hq


def _tags(conn: Connection, p: dict) -> int:
    groups = list(TAG_GROUPS)
    names = [name for tags in TAG_GROUPS.values() for name in tags]
    per_group = len(next(iter(TAG_GROUPS.values())))
    _run(
        conn,
        """
        INSERT INTO tag_groups (id, tenant_id, store_id, name, updated_at)
        SELECT md5(:k || '/tg/' || (i - 1)), :t, NULL, name, :now
        FROM unnest(CAST(:groups AS text[])) WITH ORDINALITY AS g(name, i)""",
        {**p, "groups": groups},
    )
    return len(groups) + _run(
        conn,
        f"""
        INSERT INTO tags (id, tenant_id, group_id, store_id, name, code, updated_at)
        SELECT md5(:k || '/tag/' || ((i - 1) / {per_group}) || '/' || ((i - 1) % {per_group})),
               :t, md5(:k || '/tg/' || ((i - 1) / {per_group})), NULL, name,
               ((i - 1) % {per_group})::text, :now
        FROM unnest(CAST(:names AS text[])) WITH ORDINALITY AS n(name, i)""",
        {**p, "names": names},
    )


def _member_plan(conn: Connection, p: dict) -> int:
    """A temporary table of every member's derived facts, read by the inserts after it."""
    conn.execute(text("DROP TABLE IF EXISTS scale_members"))
    guides = p["stores"] * p["gps"]
    return _run(
        conn,
        f"""
        CREATE TEMPORARY TABLE scale_members AS
        SELECT n, id, r0, r1, r2, r3, r4, r5, r6, r7, guide_k,
               CASE WHEN guide_k IS NULL THEN r1 % :stores ELSE guide_k / :gps END AS store_s,
               CASE WHEN guide_k IS NULL THEN NULL ELSE md5(:k || '/g/' || guide_k) END
                   AS guide_id,
               md5(:k || '/s/' || CASE WHEN guide_k IS NULL THEN r1 % :stores
                                       ELSE guide_k / :gps END) AS store_id,
               joined_at, order_count,
               CASE WHEN order_count > 0
                    THEN joined_at + make_interval(secs => r3 % (age_s + 1)) END AS last_order_at,
               age_s
        FROM (
            SELECT n, id, r0, r1, r2, r3, r4, r5, r6, r7,
                   CASE WHEN n % :stride = 0 THEN 0
                        WHEN r0 % 20 = 0 THEN NULL
                        ELSE 1 + r0 % {guides - 1} END AS guide_k,
                   :now - make_interval(secs => r1 % (1095 * 86400)) AS joined_at,
                   r1 % (1095 * 86400) AS age_s,
                   r2 % 3 AS order_count
            FROM (
                SELECT n, id, {_u32("h", 0)} AS r0, {_u32("h", 1)} AS r1, {_u32("h", 2)} AS r2,
                       {_u32("h", 3)} AS r3, {_u32("h2", 0)} AS r4, {_u32("h2", 1)} AS r5,
                       {_u32("h2", 2)} AS r6, {_u32("h2", 3)} AS r7
                FROM (SELECT n, id, h, md5(h) AS h2
                      FROM (SELECT n, md5(:k || '/m/' || n) AS id, md5(:k || '/mh/' || n) AS h
                            FROM generate_series(0, :members - 1) n) ids
                      OFFSET 0) hashes
                OFFSET 0  -- a fence: each md5 and draw computed once, not once per use
            ) draws
        ) facts""",
        p,
    )


# Unique 9-digit numbers: an affine bijection mod 10^9, then its digits rotated so the
# last four (phone_tail) come from the well-mixed high digits, not from n mod 10^4.
_PHONE = (
    "((n::bigint * 102947 + 12345) % 1000000000) % 100000 * 10000 "
    "+ ((n::bigint * 102947 + 12345) % 1000000000) / 100000"
)


def _members(conn: Connection, p: dict) -> int:
    name = _pick(SURNAMES, "r4 / 100") + " || " + _pick(GIVEN, "r5 / 100")
    stage = (
        "CASE WHEN r5 % 100 = 0 THEN 'ambassador' WHEN order_count = 2 THEN 'regular' "
        "WHEN order_count = 1 THEN 'customer' WHEN r5 % 2 = 0 THEN 'fan' "
        "ELSE 'prospect' END"
    )
    tier = (
        "CASE WHEN r4 % 100 < 70 THEN 'normal' WHEN r4 % 100 < 90 THEN 'silver' "
        "WHEN r4 % 100 < 98 THEN 'gold' ELSE 'platinum' END"
    )
    gender = (
        "CASE WHEN r6 / 8 % 10 < 6 THEN 'female' WHEN r6 / 8 % 10 < 9 THEN 'male' "
        "ELSE 'unknown' END"
    )
    birthday = "CASE WHEN r0 / 20 % 10 < 8 THEN DATE '1965-01-01' + (r1 / 7 % (365 * 40))::int END"
    return _run(
        conn,
        f"""
        INSERT INTO members (id, tenant_id, phone, phone_tail, unionid, name, gender, birthday,
                             birthday_mmdd, tier, stage, source_channel, joined_at, guide_id,
                             store_id, bound_at, binding_locked_until, first_order_at,
                             last_order_at, last_contact_at, state, created_at, updated_at)
        SELECT id, :t, phone, right(phone, 4),
               CASE WHEN r6 / 80 % 10 < 6 THEN 'o' || substr(md5(id), 1, 27) END,
               {name}, {gender}, birthday, to_char(birthday, 'MMDD'), {tier}, {stage},
               {_pick(SOURCE_CHANNELS, "r6")}, joined_at, guide_id, store_id,
               CASE WHEN guide_id IS NOT NULL THEN joined_at END,
               CASE WHEN guide_id IS NOT NULL THEN joined_at + interval '90 days' END,
               joined_at + (last_order_at - joined_at) / nullif(order_count, 0), last_order_at,
               CASE WHEN r7 % 4 = 0 THEN :now - make_interval(secs => r7 / 4 % (90 * 86400)) END,
               'active', joined_at, joined_at
        FROM (SELECT *, '13' || lpad(({_PHONE})::text, 9, '0') AS phone,
                     {birthday} AS birthday
              FROM scale_members) m""",
        p,
    )


def _bindings(conn: Connection, p: dict) -> int:
    return _run(
        conn,
        """
        INSERT INTO bindings (id, tenant_id, member_id, guide_id, store_id, reason, started_at,
                              locked_until)
        SELECT md5(:k || '/bd/' || n), :t, id, guide_id, store_id, 'import', joined_at,
               joined_at + interval '90 days'
        FROM scale_members WHERE guide_id IS NOT NULL""",
        p,
    )


def _orders(conn: Connection, p: dict) -> int:
    product = _pick([name for name, _ in PRODUCTS], "r6 / 7 + j")
    price = "(" + _pick([str(fen) for _, fen in PRODUCTS], "r6 / 7 + j") + ")::bigint"
    return _run(
        conn,
        f"""
        INSERT INTO orders (id, tenant_id, member_id, channel, order_no, store_id, guide_id,
                            amount_fen, refunded_fen, items, ordered_at, created_at)
        SELECT md5(:k || '/o/' || n || '/' || j), :t, id, {_pick(ORDER_CHANNELS, "r5 + j")},
               'SO' || n || '-' || j, store_id, guide_id, price, 0,
               json_build_array(json_build_object('name', product, 'qty', 1,
                                                  'price_fen', price)),
               ordered_at, ordered_at
        FROM (SELECT n, id, j, store_id, guide_id, r5, {product} AS product, {price} AS price,
                     joined_at + (last_order_at - joined_at) * j / order_count AS ordered_at
              FROM scale_members CROSS JOIN LATERAL generate_series(1, order_count) j
              WHERE order_count > 0) o""",
        p,
    )


def _member_tags(conn: Connection, p: dict) -> int:
    """One tag in a group for a quarter of the members, per group (about one tag each)."""
    per_group = len(next(iter(TAG_GROUPS.values())))
    return _run(
        conn,
        f"""
        INSERT INTO member_tags (id, tenant_id, member_id, tag_id, source, created_at)
        SELECT md5(:k || '/mt/' || n || '/' || g), :t, id,
               md5(:k || '/tag/' || g || '/' || ((r6 >> (g * 3)) % {per_group})), 'import',
               joined_at
        FROM scale_members CROSS JOIN generate_series(0, {len(TAG_GROUPS) - 1}) g
        WHERE (r7 >> (g * 4)) % 16 < 4""",
        p,
    )


def _change_log(conn: Connection, p: dict) -> int:
    """seq 1 for everything: the tenant as a freshly imported one looks to the sync API."""
    return _run(
        conn,
        """
        INSERT INTO change_log (tenant_id, seq, scope, table_name, record_id, deleted)
        SELECT :t, 1, scope, table_name, record_id, false FROM (
            SELECT 'g:' || guide_id AS scope, 'members' AS table_name, id AS record_id
            FROM scale_members WHERE guide_id IS NOT NULL
            UNION ALL
            SELECT 's:' || store_id, 'members', id FROM scale_members
            UNION ALL
            SELECT 's:' || id, 'stores', id FROM stores WHERE tenant_id = :t
            UNION ALL
            SELECT 's:' || store_id, 'staff', id FROM staff
            WHERE tenant_id = :t AND store_id IS NOT NULL
            UNION ALL
            SELECT 't:' || :t, 'tag_groups', id FROM tag_groups WHERE tenant_id = :t
            UNION ALL
            SELECT 't:' || :t, 'tags', id FROM tags WHERE tenant_id = :t
        ) rows""",
        p,
    )


def _sync_counter(conn: Connection, p: dict) -> int:
    return _run(conn, "UPDATE sync_counters SET value = 1 WHERE tenant_id = :t", p)


_STEPS = [
    ("brand_regions", _brand_and_regions),
    ("stores", _stores),
    ("staff", _staff),
    ("tags", _tags),
    ("member_plan", _member_plan),
    ("members", _members),
    ("bindings", _bindings),
    ("orders", _orders),
    ("member_tags", _member_tags),
    ("change_log", _change_log),
    ("sync_counters", _sync_counter),
]
_VACUUMED = [
    "brands",
    "regions",
    "stores",
    "staff",
    "tag_groups",
    "tags",
    "members",
    "bindings",
    "orders",
    "member_tags",
    "change_log",
    "sync_counters",
]


def _vacuum_analyze(engine: Engine) -> None:
    """Statistics for the planner, the visibility map a long-running tenant would have, and
    a checkpoint so that timings after the load do not pay for writing it out."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) " + ", ".join(_VACUUMED)))
        if conn.execute(text("SELECT pg_has_role('pg_checkpoint', 'MEMBER')")).scalar():
            conn.execute(text("CHECKPOINT"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--url", required=True, help="a migrated PostgreSQL database")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--stores", type=int, default=4000)
    parser.add_argument("--guides-per-store", type=int, default=10)
    parser.add_argument("--slug", default="scale")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--migrate", action="store_true", help="upgrade the schema first")
    args = parser.parse_args(argv)
    if args.migrate:
        from bench.common import migrate

        migrate(args.url)
    engine = make_engine(args.url)
    try:
        scale = generate_scale_tenant(
            engine,
            stores=args.stores,
            members=args.members,
            guides_per_store=args.guides_per_store,
            seed=args.seed,
            slug=args.slug,
        )
    finally:
        engine.dispose()
    print(f"tenant {scale.slug} ({scale.tenant_id}): {scale.counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
