from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from medsign.clock import FixedClock
from medsign.crypto.types import AlgorithmFamily
from medsign.db.session import Database
from medsign.db.tables import ApplicationRow, OrganizationRow, SignRequestRow, StaffRow
from medsign.errors import InputError, NotFoundError
from medsign.intake.errors import (
    DigestAlgorithmError,
    DigestLengthError,
    IdempotencyConflictError,
    RecordTooLargeError,
    RequestExpiredError,
    RequestNotPendingError,
    SignerCertificateHeldError,
    SignerFrozenError,
    SignerNotEnrolledError,
)
from medsign.intake.requests import CANCELLED, EXPIRED, Intake, IntakeLimits, ItemInput, Signer
from medsign.intake.scenes import SceneRegistry, UnknownSceneError

SIGNER = Signer("stf_1", "org_1", "内科", "active", "key_1", "crt_1", "good", AlgorithmFamily.P256)
SM2_SIGNER = Signer(
    "stf_1", "org_1", "内科", "active", "key_1", "crt_1", "good", AlgorithmFamily.SM2
)
ORDER = {"order_no": "MO-1", "drug": "阿莫西林", "dose": "0.5 g", "times": 3}


@pytest.fixture
def intake() -> Intake:
    return Intake(SceneRegistry(), IntakeLimits(max_record_bytes=2048, max_batch_items=10))


@pytest.fixture
def seeded(database: Database, clock: FixedClock) -> Database:
    now = clock.now()
    with database.session() as s:
        s.add(OrganizationRow(id="org_1", code="h", name="H", demo=False, created_at=now))
        s.flush()
        for app in ("app_1", "app_2"):
            s.add(
                ApplicationRow(
                    id=app,
                    organization_id="org_1",
                    code=app,
                    name=app,
                    secret_sealed=b"x",
                    secret_rotated_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        s.add(
            StaffRow(
                id="stf_1",
                organization_id="org_1",
                employee_no="E1",
                name="x",
                created_at=now,
                updated_at=now,
            )
        )
    return database


def item(**overrides: object) -> ItemInput:
    values: dict[str, object] = {
        "scene": "medical-order",
        "summary": "阿莫西林 0.5g tid",
        "record_id": "MO-1",
        "record": ORDER,
    }
    values.update(overrides)
    return ItemInput(**values)  # type: ignore[arg-type]


def test_json_records_are_canonicalised_before_hashing(intake: Intake) -> None:
    prepared = intake.prepare(item(), SIGNER)
    assert prepared.content == rfc8785.dumps(ORDER)
    assert prepared.digest == hashlib.sha256(rfc8785.dumps(ORDER)).digest()
    reordered = intake.prepare(item(record=dict(reversed(list(ORDER.items())))), SIGNER)
    assert reordered.digest == prepared.digest
    assert (
        intake.prepare(item(), SM2_SIGNER).digest
        == hashlib.new("sm3", rfc8785.dumps(ORDER)).digest()
    )


def test_digest_mode_is_checked(intake: Intake) -> None:
    digest = hashlib.sha256(b"x").digest()
    ok = intake.prepare(item(record=None, digest=digest, digest_algorithm="sha256"), SIGNER)
    assert ok.content is None and ok.digest == digest
    with pytest.raises(DigestLengthError):
        intake.prepare(item(record=None, digest=digest[:31], digest_algorithm="sha256"), SIGNER)
    with pytest.raises(DigestAlgorithmError):
        intake.prepare(item(record=None, digest=digest, digest_algorithm="sha256"), SM2_SIGNER)
    with pytest.raises(DigestAlgorithmError):
        intake.prepare(item(record=None, digest=digest, digest_algorithm="md5"), SIGNER)
    with pytest.raises(InputError):
        intake.prepare(item(digest=digest, digest_algorithm="sha256"), SIGNER)  # both given


def test_bad_items(intake: Intake) -> None:
    with pytest.raises(UnknownSceneError):
        intake.prepare(item(scene="haircut"), SIGNER)
    with pytest.raises(InputError):
        intake.prepare(item(summary="  "), SIGNER)
    with pytest.raises(RecordTooLargeError):
        intake.prepare(item(record={"x": "y" * 5000}), SIGNER)
    with pytest.raises(InputError):
        intake.prepare(item(record={"x": float("nan")}), SIGNER)
    with pytest.raises(InputError):
        intake.prepare(item(record=["not", "an", "object"]), SIGNER)


@settings(max_examples=50, deadline=None)
@given(
    record=st.dictionaries(
        st.text(max_size=5),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=10),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
            max_leaves=8,
        ),
        max_size=4,
    )
)
def test_any_json_record_gets_a_stable_digest(record: object) -> None:
    intake = Intake(SceneRegistry())
    one = intake.prepare(item(record=record), SIGNER)
    two = intake.prepare(item(record=record), SIGNER)
    assert one.digest == two.digest and len(one.digest) == 32


@pytest.mark.parametrize(
    ("signer", "error"),
    [
        (Signer("s", "o", "", "frozen", "k", "c", "good", AlgorithmFamily.P256), SignerFrozenError),
        (Signer("s", "o", "", "active", None, None, None, None), SignerNotEnrolledError),
        (
            Signer("s", "o", "", "active", "k", "c", "hold", AlgorithmFamily.P256),
            SignerCertificateHeldError,
        ),
        # Ed25519 signs messages, not digests: no data signature can be made with it.
        (
            Signer("s", "o", "", "active", "k", "c", "good", AlgorithmFamily.ED25519),
            SignerNotEnrolledError,
        ),
    ],
)
def test_signers_that_cannot_sign(signer: Signer, error: type[Exception]) -> None:
    with pytest.raises(error):
        signer.check_can_sign()


def test_open_is_idempotent_per_application(
    seeded: Database, intake: Intake, clock: FixedClock
) -> None:
    now = clock.now()
    items = [intake.prepare(item(record_id=f"MO-{i}"), SIGNER) for i in range(3)]
    expires = now + dt.timedelta(hours=1)
    with seeded.session() as s:
        first = intake.open(
            s,
            now,
            application_id="app_1",
            signer=SIGNER,
            items=items,
            idempotency_key="k1",
            as_batch=True,
            expires_at=expires,
        )
    with seeded.session() as s:
        again = intake.open(
            s,
            now,
            application_id="app_1",
            signer=SIGNER,
            items=items,
            idempotency_key="k1",
            as_batch=True,
            expires_at=expires,
        )
        other_app = intake.open(
            s,
            now,
            application_id="app_2",
            signer=SIGNER,
            items=items,
            idempotency_key="k1",
            as_batch=True,
            expires_at=expires,
        )
    assert again.replayed and [r.id for r in again.requests] == [r.id for r in first.requests]
    assert not other_app.replayed and other_app.batch_id != first.batch_id
    with pytest.raises(IdempotencyConflictError), seeded.session() as s:
        intake.open(
            s,
            now,
            application_id="app_1",
            signer=SIGNER,
            items=items[:2],
            idempotency_key="k1",
            as_batch=True,
            expires_at=expires,
        )
    with seeded.session() as s:
        assert s.query(SignRequestRow).count() == 6
        with pytest.raises(NotFoundError):
            intake.get_row(s, first.requests[0].id, application_id="app_2")


def test_transitions_and_expiry(seeded: Database, intake: Intake, clock: FixedClock) -> None:
    now = clock.now()
    prepared = [intake.prepare(item(record_id=f"R{i}"), SIGNER) for i in range(2)]
    with seeded.session() as s:
        a = intake.open(
            s,
            now,
            application_id="app_1",
            signer=SIGNER,
            items=[prepared[0]],
            idempotency_key="a",
            as_batch=False,
            expires_at=now + dt.timedelta(minutes=5),
        ).requests[0]
        b = intake.open(
            s,
            now,
            application_id="app_1",
            signer=SIGNER,
            items=[prepared[1]],
            idempotency_key="b",
            as_batch=False,
            expires_at=now + dt.timedelta(minutes=5),
        ).requests[0]
    with seeded.session() as s:
        row = intake.get_row(s, a.id, application_id="app_1")
        intake.transition(s, row, now, CANCELLED)
    with pytest.raises(RequestNotPendingError), seeded.session() as s:
        intake.transition(s, intake.get_row(s, a.id), now, CANCELLED)
    later = now + dt.timedelta(minutes=6)
    with pytest.raises(RequestExpiredError), seeded.session() as s:
        intake.transition(s, intake.get_row(s, b.id), later, CANCELLED)
    with seeded.session() as s:
        assert intake.expire_due(s, later) == [b.id]
    with seeded.session() as s:
        assert intake.get_row(s, b.id).state == EXPIRED
        assert intake.expire_due(s, later) == []


def test_control_characters_are_refused(intake: Intake) -> None:
    with pytest.raises(InputError):
        intake.prepare(item(summary="a\x00b"), SIGNER)
    with pytest.raises(InputError):
        intake.prepare(item(record_id="MO\x1b1"), SIGNER)
    assert intake.prepare(item(summary="第一行\n第二行\t。"), SIGNER).summary
