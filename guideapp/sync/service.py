"""Pull: what changed in the caller's scopes since their cursor, in WatermelonDB's shape.

Cursors are the tenant's commit-ordered change sequence (see changelog.py). A first pull,
a cursor older than the kept change log, or a guide who moved store gets the whole scope,
paged: every page carries the same `timestamp` and a `next_page` token until the last.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace

from sqlalchemy import String, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from guideapp.http_metrics import PULL_LAG
from guideapp.policy.actor import Actor
from guideapp.db import any_of
from guideapp import untrusted
from guideapp.errors import Forbidden, InvalidInput
from guideapp.changelog import ChangeLogEntry, SyncCounter, newest_change_seq, staff_scope
from guideapp.changelog.scopes import STORE
from guideapp.org.models import Store
from guideapp.sync.tables import SyncTable, raw_records, tables_for
from guideapp.tasks.models import TaskTarget

PAGE_SIZE = 2000
# (parent table, child table, child model, child's parent column): see _add_implied.
IMPLIED = ((("tasks", "task_targets", TaskTarget, TaskTarget.task_id)),)
ID_CHUNK = 900  # ids per IN (...) lookup


def require_phone_user(actor: Actor) -> None:
    if actor.is_hq:
        raise Forbidden("Sync carries a guide's or a store's working set; HQ uses the API.")


def freshness_needed(actor: Actor, *, last_pulled_at: int | None, page: str | None) -> int:
    """The change sequence a standby must have replayed to answer this pull as the primary
    would now: the newest change in the caller's scopes (read with the login check), the
    phone's cursor (so it never goes backwards) and the cursor of a snapshot being paged."""
    needed = max(actor.change_version or 0, last_pulled_at or 0)
    if page:
        needed = max(needed, _decode_page(page)["c"])
    return needed


# The counter and the newest change in the four scopes a phone follows, in one round trip,
# built once (building it costs more than running it). Every table's scopes are among the
# four (tables.py), so a newest change at or below the phone's cursor means an empty pull.
_COUNTER_AND_NEWEST = select(
    SyncCounter.value,
    SyncCounter.oldest_kept_seq,
    newest_change_seq(
        bindparam("tenant_id"),
        bindparam("staff_id"),
        bindparam("store_id", type_=String),
        bindparam("region_id", type_=String),
    ),
).where(SyncCounter.tenant_id == bindparam("tenant_id"))


def cursor_of(session: Session, tenant_id: str) -> SyncCounter:
    return session.execute(
        select(SyncCounter).where(SyncCounter.tenant_id == tenant_id)
    ).scalar_one()


def pull(
    session: Session,
    *,
    actor: Actor,
    last_pulled_at: int | None,
    schema_version: int,
    migration: dict | None = None,
    page: str | None = None,
    page_size: int = PAGE_SIZE,
) -> dict:
    require_phone_user(actor)
    tables = tables_for(schema_version)
    if page:
        return _snapshot_page(session, actor, tables, _decode_page(page), page_size)
    if last_pulled_at is not None and not _refilled_tables(migration, tables):
        cursor = _nothing_new_since(actor, last_pulled_at)
        if cursor is not None:
            PULL_LAG.observe(max(cursor - last_pulled_at, 0))
            return {"changes": _empty(tables), "timestamp": cursor, "next_page": None}
    cursor, oldest_kept, newest = session.execute(
        _COUNTER_AND_NEWEST,
        {
            "tenant_id": actor.tenant_id,
            "staff_id": actor.staff_id,
            "store_id": actor.store_id,
            "region_id": actor.region_id,
        },
    ).one()
    if last_pulled_at is None:
        return _snapshot_page(session, actor, tables, {"c": cursor, "t": 0, "a": None}, page_size)
    replace = {"c": cursor, "t": 0, "a": None, "r": True}
    PULL_LAG.observe(max(cursor - last_pulled_at, 0))
    if last_pulled_at > cursor or last_pulled_at < oldest_kept:
        return _snapshot_page(session, actor, tables, replace, page_size)
    if newest <= last_pulled_at:  # nothing in the phone's scopes since its cursor
        changes: dict | None = _empty(tables)
    else:
        changes = _incremental(session, actor, tables, last_pulled_at, cursor)
    if changes is None:  # the guide moved store: one store's data out, another's in
        first = _snapshot_page(session, actor, tables, replace, page_size)
        for name, ids in _left_with_the_move(session, actor, tables, last_pulled_at).items():
            first["changes"][name]["deleted"] = ids
        return first
    versioned = {t.name: t for t in tables}  # with the columns this version knows
    for name in _refilled_tables(migration, tables):
        changes[name]["updated"] = _all_rows(session, actor, versioned[name])
    return {"changes": changes, "timestamp": cursor, "next_page": None}


def _nothing_new_since(actor: Actor, last_pulled_at: int) -> int | None:
    """The cursor to answer with when the login check's snapshot (Actor.sync_counter) shows
    nothing new in the caller's scopes since `last_pulled_at`, the same test as below; None
    when it did not read the counter or something may be new. Reading nothing else, it may
    answer even where a standby would answer other pulls: the primary's counter is one the
    phone may hold (every change at or below it committed, none of them in its scopes)."""
    if actor.sync_counter is None or actor.change_version is None:
        return None
    cursor, oldest_kept = actor.sync_counter
    if oldest_kept <= last_pulled_at <= cursor and actor.change_version <= last_pulled_at:
        return cursor
    return None


def _incremental(session, actor, tables, last_pulled_at: int, cursor: int) -> dict | None:
    """Changes since the cursor, or None when the guide's own scope moved (see _scope)."""
    moved = and_(
        ChangeLogEntry.table_name == "_scope", ChangeLogEntry.scope == staff_scope(actor.staff_id)
    )
    in_scopes = or_(
        moved,
        *[
            and_(ChangeLogEntry.table_name == t.name, ChangeLogEntry.scope.in_(t.scopes(actor)))
            for t in tables
        ],
    )
    rows = session.execute(
        select(ChangeLogEntry.table_name, ChangeLogEntry.record_id)
        .where(
            ChangeLogEntry.tenant_id == actor.tenant_id,
            ChangeLogEntry.seq > last_pulled_at,
            ChangeLogEntry.seq <= cursor,
            in_scopes,
        )
        .distinct()
    ).all()
    changed: dict[str, set[str]] = {}
    for table_name, record_id in rows:
        changed.setdefault(table_name, set()).add(record_id)
    if "_scope" in changed:
        return None
    _add_implied(session, changed, tables)
    changes = _empty(tables)
    for table in tables:
        ids = sorted(changed.get(table.name, ()))
        found = {}
        for i in range(0, len(ids), ID_CHUNK):
            chunk = ids[i : i + ID_CHUNK]
            rows = session.scalars(
                select(table.model).where(table.model.id.in_(chunk), table.in_scope(actor))
            ).all()
            for record in raw_records(session, table, rows):
                found[record["id"]] = record
        # Echoes and creations alike go as 'updated' (clients set sendCreatedAsUpdated).
        changes[table.name]["updated"] = [found[i] for i in ids if i in found]
        changes[table.name]["deleted"] = [i for i in ids if i not in found]
    return changes


def _left_with_the_move(session, actor, tables, last_pulled_at: int) -> dict[str, list[str]]:
    """What the phone of a guide who moved store held and no longer holds: the scope of
    each store they left since the pull (the move logs `_scope` in the old store's scope)
    and what changed in it since, minus the current scope. The first page of the
    replacement lists these ids in `deleted`, so the client's rule (before a pull destroys
    a locally changed record, push it) covers the records leaving with the move too:
    WatermelonDB destroys every local record a replacement leaves out."""
    old_stores = session.scalars(
        select(ChangeLogEntry.scope)
        .where(
            ChangeLogEntry.tenant_id == actor.tenant_id,
            ChangeLogEntry.table_name == "_scope",
            ChangeLogEntry.record_id == actor.staff_id,
            ChangeLogEntry.scope.startswith(STORE),
            ChangeLogEntry.seq > last_pulled_at,
        )
        .distinct()
    ).all()
    regions = dict(
        session.execute(
            select(Store.id, Store.region_id).where(
                Store.tenant_id == actor.tenant_id,
                Store.id.in_([scope.removeprefix(STORE) for scope in old_stores]),
            )
        ).all()
    )
    before = [
        replace(actor, store_id=store_id, region_id=region_id)
        for store_id, region_id in regions.items()
        if store_id != actor.store_id
    ]
    left: dict[str, list[str]] = {}
    for table in tables:
        held: set[str] = set()
        for old in before:
            held.update(session.scalars(select(table.model.id).where(table.in_scope(old))))
            scopes = table.scopes(old)
            if scopes:
                held.update(
                    session.scalars(
                        select(ChangeLogEntry.record_id)
                        .where(
                            ChangeLogEntry.tenant_id == actor.tenant_id,
                            ChangeLogEntry.table_name == table.name,
                            ChangeLogEntry.scope.in_(scopes),
                            ChangeLogEntry.seq > last_pulled_at,
                        )
                        .distinct()
                    )
                )
        if held:
            held.difference_update(
                session.scalars(
                    select(table.model.id).where(
                        any_of(session, table.model.id, held), table.in_scope(actor)
                    )
                )
            )
        if held:
            left[table.name] = sorted(held)
    return left


def _add_implied(session, changed: dict[str, set[str]], tables) -> None:
    """A changed parent brings its children along: fan-outs log a task, not its 10 targets
    (cancelled tasks too, so their targets leave the phone with them)."""
    names = {t.name for t in tables}
    for parent, child, model, column in IMPLIED:
        if parent in changed and child in names:
            ids = sorted(changed[parent])
            for i in range(0, len(ids), ID_CHUNK):
                changed.setdefault(child, set()).update(
                    session.scalars(select(model.id).where(column.in_(ids[i : i + ID_CHUNK])))
                )


def _snapshot_page(session, actor, tables, state: dict, page_size: int) -> dict:
    """One page of the whole scope, walking tables in order and ids ascending."""
    changes, room = _empty(tables), page_size
    table_index, after = state["t"], state["a"]
    while table_index < len(tables) and room > 0:
        table = tables[table_index]
        stmt = select(table.model).where(table.in_scope(actor))
        if after is not None:
            stmt = stmt.where(table.model.id > after)
        rows = session.scalars(stmt.order_by(table.model.id).limit(room)).all()
        changes[table.name]["updated"] = raw_records(session, table, rows)
        room -= len(rows)
        if room > 0:
            table_index, after = table_index + 1, None
        else:
            after = rows[-1].id
    done = table_index >= len(tables)
    result = {
        "changes": changes,
        "timestamp": state["c"],
        "next_page": None if done else _encode_page({**state, "t": table_index, "a": after}),
    }
    if state.get("r"):
        result["experimentalStrategy"] = "replacement"
    return result


def _all_rows(session, actor, table: SyncTable) -> list[dict]:
    rows = session.scalars(select(table.model).where(table.in_scope(actor))).all()
    return raw_records(session, table, rows)


def _refilled_tables(migration: dict | None, tables) -> list[str]:
    """WatermelonDB migration sync: new tables and tables with new columns come whole."""
    if not migration:
        return []
    known = {t.name for t in tables}
    wanted = set(migration.get("tables") or [])
    wanted |= {c.get("table") for c in migration.get("columns") or [] if isinstance(c, dict)}
    return sorted(wanted & known)


def _empty(tables) -> dict:
    return {t.name: {"created": [], "updated": [], "deleted": []} for t in tables}


def _encode_page(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def _decode_page(token: str) -> dict:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = untrusted.loads(raw, max_depth=2)
        if (
            not isinstance(state, dict)
            or not _int64(state.get("c"))
            or not _int64(state.get("t"))
            or state["t"] < 0
            or not isinstance(state.get("a"), (str, type(None)))
        ):
            raise ValueError
        return state
    except ValueError as exc:
        raise InvalidInput(errors={"page": ["Not a page token this server issued."]}) from exc


def _int64(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def list_rejections(session: Session, *, actor: Actor, limit: int, cursor: str | None):
    """Offline edits the server kept but did not apply: guides see theirs, managers the
    store's, HQ the tenant's."""
    from guideapp import policy
    from guideapp.pagination import paginate
    from guideapp.sync.models import SyncRejection

    return paginate(
        session,
        policy.scoped_select(actor, SyncRejection),
        [SyncRejection.id],
        limit=limit,
        cursor=cursor,
        descending=True,
    )
