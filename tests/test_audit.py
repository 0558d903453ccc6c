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
