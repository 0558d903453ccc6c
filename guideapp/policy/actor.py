"""The actor: who is calling, with the ids every scoped query filters on."""

from __future__ import annotations

from dataclasses import dataclass


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
