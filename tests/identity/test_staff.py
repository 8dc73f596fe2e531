from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from medsign.db.tables import OneTimeCodeRow, StaffRow
from medsign.errors import InputError, NotFoundError, StaffStateError
from medsign.evidence import list_events
from medsign.identity.staff import (
    NATIONAL_ID_CONTEXT,
    StaffInput,
    national_id_context,
    phone_context,
)
from tests.identity.support import Services, make_national_id


def record(**overrides: object) -> StaffInput:
    data: dict[str, object] = {
        "employee_no": "E001",
        "name": "李四",
        "national_id": "11010519491231002X",
        "phone": "13800000000",
        "department": "心内科",
        "title": "主任医师",
        "roles": ["doctor", "chief"],
    }
    data.update(overrides)
    return StaffInput.parse(data)


def test_upsert_seals_and_masks(services: Services) -> None:
    result = services.staff.upsert(services.organization_id, record(), actor="app_x")
    assert result.outcome == "created"
    staff = result.staff
    assert staff.national_id_masked == "1101**********002X"
    assert staff.phone_masked == "138****0000"
    assert staff.roles == ("doctor", "chief")
    assert staff.state == "active" and not staff.pin_set and staff.certificate_id is None
    with services.database.session() as session:
        row = session.get(StaffRow, staff.id)
        assert row is not None and row.national_id_sealed and row.phone_sealed
        assert b"11010519491231002X" not in row.national_id_sealed
        assert b"13800000000" not in row.phone_sealed
        assert (
            services.sealer.open_text(row.national_id_sealed, context=national_id_context(staff.id))
            == "11010519491231002X"
        )
        assert services.sealer.open_text(row.phone_sealed, context=phone_context(staff.id)) == (
            "13800000000"
        )
        assert row.national_id_digest == services.sealer.lookup_digest(
            "11010519491231002X", context=NATIONAL_ID_CONTEXT
        )
    events = list_events(services.database, subject=staff.id)
    assert [e.type for e in events] == ["staff:create"]
    assert "1101" not in json.dumps(events[0].record)


def test_upsert_is_idempotent_and_reports_changes(services: Services) -> None:
    first = services.staff.upsert(services.organization_id, record(), actor="a")
    again = services.staff.upsert(services.organization_id, record(), actor="a")
    assert again.outcome == "unchanged" and again.staff == first.staff
    # Lower-case x and a +86 prefix are the same values once normalised.
    same = record(national_id="11010519491231002x", phone="+86 138-0000-0000")
    assert services.staff.upsert(services.organization_id, same, actor="a").outcome == "unchanged"
    changed = services.staff.upsert(
        services.organization_id, record(department="急诊科", roles=["doctor"]), actor="a"
    )
    assert changed.outcome == "updated"
    assert changed.changed == ("department", "roles")
    assert changed.staff.department == "急诊科"
    # Omitted optional fields keep what is stored.
    partial = StaffInput.parse({"employee_no": "E001", "name": "李四"})
    kept = services.staff.upsert(services.organization_id, partial, actor="a")
    assert kept.outcome == "unchanged" and kept.staff.phone_masked == "138****0000"
    types = [e.type for e in list_events(services.database, subject=first.staff.id)]
    assert types == ["staff:create", "staff:update"]


def test_changed_national_id_and_phone(services: Services) -> None:
    first = services.staff.upsert(services.organization_id, record(), actor="a")
    other = make_national_id("19851111")
    result = services.staff.upsert(
        services.organization_id, record(national_id=other, phone="13912345678"), actor="a"
    )
    assert result.changed == ("national_id", "phone")
    assert result.staff.phone_masked == "139****5678"
    assert services.staff.national_id_matches(first.staff.id, other)
    assert not services.staff.national_id_matches(first.staff.id, "11010519491231002X")


def test_organizations_are_separate(services: Services) -> None:
    from medsign.identity.organizations import ensure_organization

    other = ensure_organization(services.database, services.clock, code="h2", name="第二医院")
    services.staff.upsert(services.organization_id, record(), actor="a")
    with pytest.raises(NotFoundError):
        services.staff.get(other.id, "E001")
    assert services.staff.upsert(other.id, record(), actor="a").outcome == "created"


def test_states(services: Services) -> None:
    org = services.organization_id
    services.staff.upsert(org, record(), actor="a")
    assert services.staff.freeze(org, "E001", actor="a").state == "frozen"
    with pytest.raises(StaffStateError):
        services.staff.freeze(org, "E001", actor="a")
    assert services.staff.unfreeze(org, "E001", actor="a").state == "active"
    with pytest.raises(StaffStateError):
        services.staff.unfreeze(org, "E001", actor="a")
    assert services.staff.deregister(org, "E001", actor="a").state == "deregistered"
    for action in (services.staff.freeze, services.staff.unfreeze, services.staff.deregister):
        with pytest.raises(StaffStateError):
            action(org, "E001", actor="a")
    with pytest.raises(StaffStateError) as info:
        services.staff.upsert(org, record(), actor="a")
    assert "deregistered" in info.value.public_message()
    with pytest.raises(NotFoundError):
        services.staff.freeze(org, "E999", actor="a")


def test_phone_change_invalidates_open_codes(services: Services) -> None:
    staff_id, _, _ = services.add_staff("E002")
    code_id = services.codes.issue_code(staff_id, "intent", "chl_1")
    staff = services.staff.change_phone(services.organization_id, "E002", "13711112222", actor="a")
    assert staff.phone_masked == "137****2222"
    assert services.staff.phone_of(staff_id) == "13711112222"
    with services.database.session() as session:
        row = session.get(OneTimeCodeRow, code_id)
        assert row is not None and row.expires_at <= services.clock.now()
    # The same number again is not a change.
    again = services.staff.change_phone(
        services.organization_id, "E002", "137 1111 2222", actor="a"
    )
    assert again == staff
    with pytest.raises(InputError):
        services.staff.change_phone(services.organization_id, "E002", "12345", actor="a")
    types = [e.type for e in list_events(services.database, subject=staff_id)]
    assert types.count("staff:change-phone") == 1


def test_freeze_invalidates_codes(services: Services) -> None:
    staff_id, _, _ = services.add_staff("E003")
    services.codes.issue_code(staff_id, "intent", "chl_2")
    services.staff.freeze(services.organization_id, "E003", actor="a")
    with services.database.session() as session:
        open_codes = session.scalars(
            select(OneTimeCodeRow).where(OneTimeCodeRow.expires_at > services.clock.now())
        ).all()
    assert open_codes == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("employee_no", ""),
        ("employee_no", "a b"),
        ("name", ""),
        ("name", "x" * 65),
        ("name", "<script>"),
        ("national_id", "110105194912310021"),
        ("phone", "12800000000"),
        ("roles", [""]),
        ("department", "a\nb"),
        ("unexpected", "1"),
    ],
)
def test_parse_refuses_bad_fields(field: str, value: object) -> None:
    data = {"employee_no": "E1", "name": "王五", field: value}
    with pytest.raises(InputError) as info:
        StaffInput.parse(data)
    assert info.value.extra["field"] == field
    # The refused value never appears in what a caller sees.
    if isinstance(value, str) and len(value) > 3:
        assert value not in info.value.public_message()


def test_list_and_get_by_id(services: Services) -> None:
    staff_id, _, _ = services.add_staff("E010")
    services.add_staff("E011")
    assert [s.employee_no for s in services.staff.list(services.organization_id)] == [
        "E010",
        "E011",
    ]
    assert services.staff.get_by_id(staff_id).employee_no == "E010"
    with pytest.raises(NotFoundError):
        services.staff.get_by_id("stf_missing")
