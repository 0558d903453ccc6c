"""A minimal WatermelonDB-like phone for tests: local tables, pending changes, sync()."""

from __future__ import annotations

import itertools

_keys = itertools.count(1)


class Phone:
    def __init__(self, api, phone_number: str):
        self.api, self.number = api, phone_number
        self.tables: dict[str, dict[str, dict]] = {}
        self.pending: dict[str, dict[str, dict]] = {}  # table -> id -> {"op", "record"}
        self.cursor = None
        self.rejected: dict = {}

    # --- local edits, as the app makes them offline -----------------------------------
    def create(self, table: str, record: dict) -> None:
        self.tables.setdefault(table, {})[record["id"]] = dict(record)
        self.pending.setdefault(table, {})[record["id"]] = {"op": "created"}

    def update(self, table: str, record_id: str, **fields) -> None:
        self.tables[table][record_id].update(fields)
        entry = self.pending.setdefault(table, {}).get(record_id)
        if entry is None:
            self.pending[table][record_id] = {"op": "updated"}

    # --- protocol ------------------------------------------------------------------------
    def pull(self) -> dict:
        url = f"/api/v1/sync/pull?last_pulled_at={self.cursor or 'null'}&schema_version=1"
        page, replacement, merged = None, False, {}
        while True:
            response = self.api.get(self.number, url + (f"&page={page}" if page else ""))
            assert response.status_code == 200, response.get_json()
            body = response.get_json()
            replacement |= body.get("experimentalStrategy") == "replacement"
            for table, ops in body["changes"].items():
                slot = merged.setdefault(table, {"updated": [], "deleted": []})
                slot["updated"] += ops["created"] + ops["updated"]
                slot["deleted"] += ops["deleted"]
            page = body.get("next_page")
            if not page:
                break
        self._rescue(merged)
        if replacement or self.cursor is None:
            # As WatermelonDB applies a replacement: every local record the snapshot leaves
            # out is destroyed, local edits and all, unless it was created on the phone.
            for table, ops in merged.items():
                sent = {r["id"] for r in ops["updated"]}
                pending = self.pending.get(table, {})
                for record_id in list(self.tables.get(table, {})):
                    if record_id in sent or pending.get(record_id, {}).get("op") == "created":
                        continue
                    self.tables[table].pop(record_id)
                    pending.pop(record_id, None)
        for table, ops in merged.items():
            local = self.tables.setdefault(table, {})
            for record in ops["updated"]:
                if record["id"] in self.pending.get(table, {}):
                    continue  # per-column merge keeps local edits; simplified: keep local
                local[record["id"]] = record
            for record_id in ops["deleted"]:
                local.pop(record_id, None)
                self.pending.get(table, {}).pop(record_id, None)
        self.cursor = body["timestamp"]
        return merged

    def _rescue(self, merged: dict) -> None:
        """The contract's rule for clients: before a pull destroys records changed offline,
        push them (WatermelonDB would destroy them, edits and all); the server applies them
        or keeps them as server-wins attempts."""
        doomed = {
            table: [i for i in ops["deleted"] if i in self.pending.get(table, {})]
            for table, ops in merged.items()
        }
        doomed = {table: ids for table, ids in doomed.items() if ids}
        if doomed and self.cursor is not None:
            response = self.push(only=doomed)
            assert response.status_code == 200, response.get_json()

    def push(self, key: str | None = None, only: dict | None = None):
        changes = {}
        for table, entries in self.pending.items():
            for record_id, entry in entries.items():
                if only is not None and record_id not in only.get(table, ()):
                    continue
                record = self.tables.get(table, {}).get(record_id)
                if record is None:
                    continue
                changes.setdefault(table, {"created": [], "updated": [], "deleted": []})
                changes[table][entry["op"]].append({**record, "_status": entry["op"]})
        if not changes:
            return None
        response = self.api.post(
            self.number,
            f"/api/v1/sync/push?last_pulled_at={self.cursor}",
            json={"changes": changes},
            headers={"Idempotency-Key": key or f"push-{next(_keys)}"},
        )
        if response.status_code == 200:
            rejected = response.get_json().get("experimentalRejectedIds") or {}
            self.rejected.update(response.get_json().get("rejected") or {})
            for table, entries in changes.items():
                for op in ("created", "updated", "deleted"):
                    for record in entries[op]:
                        if record["id"] in rejected.get(table, ()):
                            continue  # like WatermelonDB: a rejected record stays unsent
                        self.pending.get(table, {}).pop(record["id"], None)
        return response

    def sync(self):
        """WatermelonDB's synchronize(): pull, push; on a conflict pull and push again."""
        self.pull()
        response = self.push()
        if response is not None and response.status_code == 409:
            self.pull()
            response = self.push()
        assert response is None or response.status_code == 200, response.get_json()
        return response
