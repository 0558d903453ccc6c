"""HQ bulk import of quick replies from .xlsx or CSV, with a row-by-row report."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.errors import InvalidInput
from guideapp.members import import_rows as cells
from guideapp.members.imports import Spec, check_rows, map_columns
from guideapp.members.models import Tag, TagGroup
from guideapp.replies import render, service
from guideapp.replies.models import QuickReply, ReplyCategory

MAX_ROWS = 5000
SCENE_NAMES = {
    **{
        s: s
        for s in ("greeting", "ice_breaking", "product_advice", "after_sales", "win_back", "custom")
    },
    "问候": "greeting",
    "打招呼": "greeting",
    "欢迎语": "greeting",
    "欢迎": "greeting",
    "破冰": "ice_breaking",
    "破冰话术": "ice_breaking",
    "产品推荐": "product_advice",
    "产品建议": "product_advice",
    "商品推荐": "product_advice",
    "产品咨询": "product_advice",
    "售后": "after_sales",
    "售后服务": "after_sales",
    "召回": "win_back",
    "唤醒": "win_back",
    "挽回": "win_back",
    "沉睡唤醒": "win_back",
    "自定义": "custom",
    "其他": "custom",
}
_SPLIT = re.compile(r"[,，、;；\n]+")


@dataclass
class ReplyRun:
    """What one import knows (tags, categories, existing replies) and what it found."""

    tags: dict
    categories: dict  # (scene, name) -> category id
    existing: dict  # (scene, title) -> QuickReply
    dry_run: bool
    columns: dict = field(default_factory=dict)
    rows: int = 0
    imported: int = 0
    updated: int = 0
    categories_created: int = 0
    errors: list = field(default_factory=list)
    failed: set = field(default_factory=set)

    def error(self, row: int, name: str, message: str) -> None:
        self.errors.append({"row": row, "field": name, "message": message})
        self.failed.add(row)

    def report(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "rows": self.rows,
            "imported": self.imported,
            "updated": self.updated,
            "failed": len(self.failed),
            "categories_created": self.categories_created,
            "errors": sorted(self.errors, key=lambda e: e["row"]),
        }


def _body(raw, _ctx=None) -> str | None:
    value = cells.short_text(5000)(raw)
    if value:
        try:
            render.parse(value)
        except render.TemplateError as exc:
            raise cells.CellError(" ".join(exc.problems)) from None
    return value


def _tags(raw, run: ReplyRun) -> list[str]:
    """'跑步, 3' or '运动频率:3': HQ tags by name or code; a group name settles a tie."""
    found = []
    for word in filter(None, (w.strip() for w in _SPLIT.split(cells.text(raw)))):
        group, _, name = word.rpartition(":") if ":" in word else word.rpartition("：")
        matches = run.tags.get(name.strip(), [])
        if group:
            matches = [t for t in matches if t[1] == group.strip()]
        if not matches:
            raise cells.CellError(f"No HQ tag named or coded '{word}'.")
        if len({t[0] for t in matches}) > 1:
            groups = "、".join(sorted({t[1] for t in matches}))
            raise cells.CellError(
                f"'{word}' is a tag in several groups ({groups}); write 组名:标签, e.g. 运动频率:3."
            )
        found.append(matches[0][0])
    return list(dict.fromkeys(found))


SPEC = Spec(
    columns={
        "scene": (
            ("场景", "scene", "使用场景"),
            cells.choice(
                SCENE_NAMES,
                "问候, 破冰, 产品推荐, 售后, 召回, 自定义 (or greeting, ice_breaking, "
                "product_advice, after_sales, win_back, custom)",
            ),
        ),
        "category": (("分类", "category", "话术分类"), cells.short_text(60)),
        "title": (("标题", "title", "话术标题"), cells.short_text(120)),
        "body": (("内容", "body", "话术内容", "话术"), _body),
        "tags": (("标签", "tags", "会员标签"), _tags),
    },
    required=(("scene",), ("title",), ("body",)),
    finish=lambda record, run: [],
    keys=lambda r: [("title", (r.get("scene"), r.get("title")) if r.get("title") else None)],
    apply=lambda session, run, batch: None,
)


def import_replies(
    session: Session, *, actor: Actor, filename: str, content: bytes, dry_run: bool
) -> dict:
    """HQ-level replies from a file; a row with the scene and title of an existing HQ reply
    updates it (so a re-run changes nothing twice). Good rows land, bad ones are reported."""
    policy.require_write(actor, QuickReply(tenant_id=actor.tenant_id, level="hq"), "import")
    header, rows = cells.read_table(filename, content)
    run = _start(session, actor, dry_run)
    run.columns = map_columns(SPEC, header)
    records = check_rows(SPEC, rows, cast(Any, run))  # duck-typed: rows, columns, error()
    if not run.rows:
        raise InvalidInput(
            "The file has a header but no rows below it.",
            errors={"file": ["The file has a header but no rows below it."]},
        )
    if run.rows > MAX_ROWS:
        message = f"At most {MAX_ROWS} rows per file; split it."
        raise InvalidInput(message, errors={"file": [message]})
    for record in records:
        _apply(session, actor, run, record)
    return run.report()


def _start(session: Session, actor: Actor, dry_run: bool) -> ReplyRun:
    tags: dict[str, list] = {}
    for tag_id, name, code, group in session.execute(
        select(Tag.id, Tag.name, Tag.code, TagGroup.name)
        .join(TagGroup)
        .where(Tag.tenant_id == actor.tenant_id, Tag.store_id.is_(None))
    ):
        for key in {k for k in (name, code) if k}:  # neither None nor ""
            tags.setdefault(key, []).append((tag_id, group))
    categories = {
        (c.scene, c.name): c.id
        for c in session.scalars(
            select(ReplyCategory).where(
                ReplyCategory.tenant_id == actor.tenant_id, ReplyCategory.store_id.is_(None)
            )
        )
    }
    existing = {
        (r.scene, r.title): r
        for r in session.scalars(
            select(QuickReply).where(
                QuickReply.tenant_id == actor.tenant_id, QuickReply.level == "hq"
            )
        )
    }
    return ReplyRun(tags=tags, categories=categories, existing=existing, dry_run=dry_run)


def _apply(session: Session, actor: Actor, run: ReplyRun, record: dict) -> None:
    scene, title = record["scene"], record["title"]
    data = {
        "scene": scene,
        "title": title,
        "body": record["body"],
        "tag_ids": record.get("tags") or [],
        "category_id": _category(session, actor, run, scene, record.get("category")),
    }
    reply = run.existing.get((scene, title))
    if reply is None:
        run.imported += 1
        if not run.dry_run:
            run.existing[(scene, title)] = service.create_reply(
                session, actor=actor, data={**data, "level": "hq"}
            )
    elif any(getattr(reply, key) != value for key, value in data.items()):
        run.updated += 1
        if not run.dry_run:
            service.update_reply(session, actor=actor, reply=reply, data=data)


def _category(session: Session, actor: Actor, run: ReplyRun, scene: str, name: str | None):
    """The HQ category of that scene and name, made on first use (only noted in a dry run)."""
    if not name:
        return None
    if (scene, name) not in run.categories:
        run.categories_created += 1
        run.categories[(scene, name)] = (
            f"new:{scene}:{name}"
            if run.dry_run
            else service.create_category(
                session, actor=actor, data={"scene": scene, "name": name}
            ).id
        )
    return run.categories[(scene, name)]
