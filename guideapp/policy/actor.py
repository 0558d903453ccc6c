"""The actor: who is calling, with the ids every scoped query filters on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import String
from sqlalchemy.sql.elements import BindParameter

# The ids a read rule may use, by the names a statement built for an actor's shape binds.
_IDS = ("staff_id", "tenant_id", "store_id", "region_id")


class ActorValue(BindParameter):
    """An actor's id in a statement built once per actor shape (Actor.parametric), bound
    at each execution from Actor.bound_values(). A rule that formatted it in Python (an
    f-string) would build a statement that silently matches nothing: that raises."""

    inherit_cache = True

    def __format__(self, spec) -> str:
        raise TypeError(f"{self.key} is bound at execution; build the rule in SQL, not Python")


@dataclass(frozen=True)
class Actor:
    staff_id: str
    tenant_id: str
    role: str
    store_id: str | None
    region_id: str | None
    session_id: str | None = None
    # The newest change-log sequence the actor's phone follows, when the view asked for it
    # with the login check (Blueprint.versioned_read); None otherwise.
    change_version: int | None = None
    # With it, for a view that asks (Blueprint.answers_empty_pull): the tenant's sync counter
    # and its oldest kept sequence, from the same snapshot.
    sync_counter: tuple[int, int] | None = None

    @property
    def is_hq(self) -> bool:
        return self.role == "hq_admin"

    @property
    def is_manager(self) -> bool:
        return self.role == "store_manager"

    @property
    def is_guide(self) -> bool:
        return self.role == "guide"

    # A statement built once and kept (statements.Prebuilt, pagination.KeptPage) is built for
    # the actor's shape: its role and which ids it lacks, the only things a read rule may
    # decide in Python. Its ids are bound at execution.
    @property
    def shape(self) -> tuple[str, bool, bool]:
        return (self.role, self.store_id is None, self.region_id is None)

    def bound_values(self) -> dict[str, str]:
        """The ids a statement built for `Actor.parametric(self.shape)` binds."""
        return {f"actor_{name}": value for name in _IDS if (value := getattr(self, name))}

    @classmethod
    def parametric(cls, shape: tuple[str, bool, bool]) -> Actor:
        """An actor of `shape` whose ids are bound parameters (ActorValue): a read rule
        given it builds the statement every actor of that shape runs."""
        role, no_store, no_region = shape
        absent = {"store_id": no_store, "region_id": no_region}
        ids: Any = {
            name: None
            if absent.get(name)
            else ActorValue(f"actor_{name}", type_=String(), required=True)
            for name in _IDS
        }
        return cls(role=role, **ids)

    @classmethod
    def for_staff(cls, staff, session_id: str | None = None) -> Actor:
        return cls(
            staff_id=staff.id,
            tenant_id=staff.tenant_id,
            role=staff.role,
            store_id=staff.store_id,
            region_id=staff.store.region_id if staff.store is not None else None,
            session_id=session_id,
        )
