"""Bulk import: JSON lists and CSV (with or without BOM), valid rows applied, others reported."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medsign.errors import InputError
from medsign.identity.staff import parse_csv
from tests.identity.support import Services, make_national_id

HEADER = ["employee_no", "name", "national_id", "phone", "department", "title", "roles"]


def csv_bytes(rows: list[list[str]], *, bom: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    return b"\xef\xbb\xbf" + data if bom else data


@pytest.mark.parametrize("bom", [False, True])
def test_csv_import_applies_valid_rows_and_reports_others(services: Services, bom: bool) -> None:
    good_id = make_national_id()
    rows = [
        ["D001", "赵医生", good_id, "13800001111", "儿科", "主治医师", "doctor;teacher"],
        ["D002", "钱医生", "110101199003070000", "13800002222", "儿科", "", ""],
        ["D003", "孙护士", "", "+86 139 0000 3333", "护理部", "护师", "nurse"],
        ["D004", "", "", "", "", "", ""],
        ["D001", "重复", "", "", "", "", ""],
        ["D005", "周医生", "", "1234", "", "", ""],
    ]
    report = services.staff.import_csv(
        services.organization_id, csv_bytes(rows, bom=bom), actor="a"
    )
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    errors = [(e.row, e.field, e.code) for e in report.errors]
    assert errors == [
        (2, "national_id", "invalid-input"),
        (4, "name", "invalid-input"),
        (5, "employee_no", "duplicate-row"),
        (6, "phone", "invalid-input"),
    ]
    text = json.dumps([e.message for e in report.errors], ensure_ascii=False)
    assert "110101199003070000" not in text and "1234" not in text
    staff = services.staff.get(services.organization_id, "D001")
    assert staff.roles == ("doctor", "teacher") and staff.national_id_masked is not None
    assert services.staff.get(services.organization_id, "D003").phone_masked == "139****3333"
    again = services.staff.import_csv(services.organization_id, csv_bytes(rows[:1]), actor="a")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)


def test_json_import_and_deregistered_rows(services: Services) -> None:
    services.add_staff("J002")
    services.staff.deregister(services.organization_id, "J002", actor="a")
    report = services.staff.import_records(
        services.organization_id,
        [
            {"employee_no": "J001", "name": "吴医生", "roles": ["doctor"]},
            {"employee_no": "J002", "name": "郑医生"},
            "not an object",  # type: ignore[list-item]
        ],
        actor="a",
    )
    assert report.created == 1
    assert [(e.row, e.code) for e in report.errors] == [(2, "staff-state"), (3, "invalid-input")]


def test_csv_shape_errors() -> None:
    with pytest.raises(InputError):
        parse_csv(b"")
    with pytest.raises(InputError):
        parse_csv(b"name,phone\n")
    with pytest.raises(InputError):
        parse_csv(b"\xff\xfeemployee_no\n")
    rows = parse_csv("\ufeffEmployee_No,Name\nA1,x,extra\n\n")
    assert rows == [{"employee_no": "A1", "name": "x", "__extra__": "extra"}]


# Mostly plausible values (so rows do get applied) mixed with arbitrary text.
cells = st.one_of(
    st.sampled_from(["E1", "E2", "e-3", "张三", "13800000000", "doctor;nurse", "", " "]),
    st.just(make_national_id("19800101", 7)),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=25),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(cells, min_size=0, max_size=9), max_size=8), st.booleans())
def test_arbitrary_csv_rows_are_applied_or_reported(
    services: Services, rows: list[list[str]], bom: bool
) -> None:
    """Whatever the cells, every non-empty row is applied or reported with its row number.

    One database serves all examples, so rows of earlier examples may already exist: the
    invariant holds whatever the outcome (created, updated, unchanged or refused).
    """
    data = csv_bytes(rows, bom=bom)
    parsed = parse_csv(data)
    report = services.staff.import_csv(services.organization_id, data, actor="a")
    assert report.total == len(parsed)
    applied = [number for number, _, _ in report.results]
    assert sorted(applied + [e.row for e in report.errors]) == list(range(1, len(parsed) + 1))
    for error in report.errors:
        assert error.code in {"invalid-input", "duplicate-row", "staff-state"}
