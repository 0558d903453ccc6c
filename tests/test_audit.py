"""The audit log: sensitive acts are recorded in their own transaction, HQ lists them, nobody
else reads them, and another tenant's entries never show."""

from tests.conftest import GUIDE, HQ, MANAGER, RIVAL_HQ
from tests.factories import staff_by_phone


def _entries(api, phone=HQ, query=""):
    response = api.get(phone, f"/api/v1/audit?limit=100{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def test_role_changes_and_password_resets_are_recorded_for_hq(api, session):
    guide = staff_by_phone(session, GUIDE)
    hq = staff_by_phone(session, HQ)
    promoted = api.patch(HQ, f"/api/v1/staff/{guide.id}", json={"role": "store_manager"})
    assert promoted.status_code == 200, promoted.get_json()
    reset = api.patch(HQ, f"/api/v1/staff/{guide.id}", json={"password": "Stride-reset-9931"})
    assert reset.status_code == 200
    entries = _entries(api)
    assert [(e["action"], e["target_id"], e["staff_id"]) for e in entries[:2]] == [
        ("staff.password_reset", guide.id, hq.id),
        ("staff.role_changed", guide.id, hq.id),
    ]
    assert entries[1]["details"] == {"from": "guide", "to": "store_manager"}
    assert _entries(api, query="&action=staff.role_changed")[0]["target_id"] == guide.id
    assert _entries(api, RIVAL_HQ) == [] or all(
        e["target_id"] != guide.id for e in _entries(api, RIVAL_HQ)
    )
    assert api.get(MANAGER, "/api/v1/audit").status_code == 403
    assert api.get(HQ, "/api/v1/audit?action=nonsense").status_code == 422


def test_a_refused_change_records_nothing(api, session):
    guide = staff_by_phone(session, GUIDE)
    weak = api.patch(HQ, f"/api/v1/staff/{guide.id}", json={"password": "password1234"})
    assert weak.status_code == 422
    assert _entries(api, query="&action=staff.password_reset") == []


def test_merges_transfers_and_pages_of_phones_are_recorded(api, session):
    from tests.factories import member_of

    colleague = staff_by_phone(session, "13913775684")  # another guide of SH001
    guide = staff_by_phone(session, GUIDE)
    first, second = (m for m in [member_of(session, GUIDE), member_of(session, "13913775684")])
    merged = api.post(HQ, f"/api/v1/members/{first.id}/merge", json={"merged_id": second.id})
    assert merged.status_code == 200, merged.get_json()
    moved = api.post(
        MANAGER,
        "/api/v1/members/transfer",
        json={"from_guide_id": colleague.id, "to_guide_id": guide.id},
    )
    assert moved.status_code == 200, moved.get_json()
    assert api.get(GUIDE, f"/api/v1/members?limit=50&guide_id={guide.id}").status_code == 200
    assert _entries(api, query="&action=members.phones_viewed") == []  # a guide's own book
    assert api.get(HQ, "/api/v1/members?limit=50").status_code == 200
    entries = {e["action"]: e for e in _entries(api)}
    assert entries["members.merged"]["details"] == {"merged_id": second.id}
    assert entries["members.transferred"]["details"]["from"] == colleague.id
    assert entries["members.transferred"]["staff_id"] == staff_by_phone(session, MANAGER).id
    assert entries["members.phones_viewed"]["details"]["count"] > 0
