from __future__ import annotations

import hashlib

import pytest
import rfc8785

from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.errors import InputError
from medsign.evidence import list_events, record_event


def test_events_are_canonical_and_ordered(database: Database, clock: FixedClock) -> None:
    with database.session() as session:
        first = record_event(
            session, clock.now(), "request:open", request_id="sig_1", digest_sha256="ab" * 32
        )
        record_event(session, clock.now(), "intent:confirm", request_ids=["sig_1"], method="pin")
    events = list_events(database)
    assert [e.type for e in events] == ["request:open", "intent:confirm"]
    assert events[0].id == first
    assert events[0].record["v"] == 1
    assert events[0].record["at"].endswith("Z")
    canonical = rfc8785.dumps(events[0].record)
    assert hashlib.sha256(canonical).hexdigest() == events[0].record_sha256
    assert [e.type for e in list_events(database, subject="sig_1")] == [
        "request:open",
        "intent:confirm",
    ]


def test_event_commits_with_the_state_change_or_not_at_all(
    database: Database, clock: FixedClock
) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        record_event(session, clock.now(), "signature:apply", request_id="sig_9")
        raise RuntimeError("crash before commit")
    assert list_events(database) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"staff_name": "张三"},
        {"phone": "13800000000"},
        {"pin": "123456"},
        {"national_id": "x"},
        {"content": "{}"},
        {"request_id": {"nested": 1}},
    ],
)
def test_personal_data_is_refused(
    database: Database, clock: FixedClock, fields: dict[str, object]
) -> None:
    with pytest.raises(InputError), database.session() as session:
        record_event(session, clock.now(), "request:open", **fields)  # type: ignore[arg-type]


def test_event_types_are_subject_action(database: Database, clock: FixedClock) -> None:
    with pytest.raises(InputError), database.session() as session:
        record_event(session, clock.now(), "RequestOpened")


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from medsign.evidence.events import canonical_json  # noqa: E402

_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)


@given(
    st.dictionaries(
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8),
        st.one_of(
            _text, st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.lists(_text, max_size=3)
        ),
        max_size=6,
    )
)
def test_fast_canonical_json_is_rfc8785(record: dict[str, object]) -> None:
    assert canonical_json(record) == rfc8785.dumps(record)
