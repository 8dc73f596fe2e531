"""The PKCS#11 store against SoftHSM2, on a private token made for this test run."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11_errors
from sqlalchemy import select

from medsign.clock import FixedClock
from medsign.crypto import PublicKey, message_digest, verify, verify_digest
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.db import Database
from medsign.db.tables import KeyRow
from medsign.errors import KeyStoreUnavailableError, KeyUseError
from medsign.keys import PKCS11KeyStore, key_uses
from medsign.keys import pkcs11 as pkcs11_store

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
LABEL = "medsign-test"
PIN = "1234"

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        not (Path(MODULE).is_file() and shutil.which("softhsm2-util")),
        reason="SoftHSM2 is not installed",
    ),
]


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A token directory of our own, so no test touches the machine's tokens.

    SoftHSM2 reads SOFTHSM2_CONF once, when the library is first initialised in a process;
    the token is made before that and kept for the whole module.
    """
    base = tmp_path_factory.mktemp("softhsm")
    tokens = base / "tokens"
    tokens.mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            LABEL,
            "--pin",
            PIN,
            "--so-pin",
            "5678",
        ],
        check=True,
        capture_output=True,
    )
    loaded = pkcs11.lib(MODULE)
    loaded.reinitialize()  # a library initialised earlier in this process re-reads the conf
    try:
        yield LABEL
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def hsm_store(softhsm: str, database: Database, clock: FixedClock) -> Iterator[PKCS11KeyStore]:
    store = PKCS11KeyStore(database, MODULE, softhsm, PIN, clock)
    try:
        yield store
    finally:
        store.close()  # logs out: the wrong-PIN test needs no one logged in


CASES = [
    (KeyAlgorithm.RSA_2048, SignatureScheme.RSA_PKCS1_SHA256),
    (KeyAlgorithm.RSA_2048, SignatureScheme.RSA_PSS_SHA256),
    (KeyAlgorithm.EC_P256, SignatureScheme.ECDSA_SHA256),
]


def test_generate_and_sign_every_scheme(hsm_store: PKCS11KeyStore, database: Database) -> None:
    hsm_store.check()
    refs = {
        algorithm: hsm_store.generate(algorithm, label=f"hsm {algorithm}")
        for algorithm in (KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_P256)
    }
    for algorithm, scheme in CASES:
        ref = refs[algorithm]
        assert ref.store == "pkcs11"
        public = PublicKey.from_der(ref.public_key_der)
        assert public.algorithm is algorithm
        message = f"lab report for {scheme}".encode()
        digest = message_digest(public, scheme, message)
        signature = hsm_store.sign_digest(ref.id, scheme, digest, actor="staff:1", purpose="lab")
        verify_digest(public, scheme, digest, signature)
        verify(public, scheme, message, signature)
    with database.session() as session:
        for ref in refs.values():
            row = session.get(KeyRow, ref.id)
            assert row is not None
            assert row.wrapped_key is None and row.master_version is None
            assert row.token_object_id == ref.id.encode("ascii").hex()
            assert row.public_key_der == ref.public_key_der
    assert len(key_uses(database, refs[KeyAlgorithm.RSA_2048].id)) == 2
    assert len(key_uses(database, refs[KeyAlgorithm.EC_P256].id)) == 1
    assert hsm_store.get(refs[KeyAlgorithm.EC_P256].id) == refs[KeyAlgorithm.EC_P256]


def test_private_keys_never_leave_the_token(hsm_store: PKCS11KeyStore, softhsm: str) -> None:
    refs = [
        hsm_store.generate(KeyAlgorithm.RSA_2048, label="sealed rsa"),
        hsm_store.generate(KeyAlgorithm.EC_P256, label="sealed ec"),
    ]
    token = pkcs11.lib(MODULE).get_token(token_label=softhsm)
    # Login state is shared by the whole application, so this plain session sees the keys.
    session = token.open()
    try:
        for ref, secret_attr in zip(
            refs, (Attribute.PRIVATE_EXPONENT, Attribute.VALUE), strict=True
        ):
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=ref.id.encode())
            assert key[Attribute.SENSITIVE] is True
            assert key[Attribute.EXTRACTABLE] is False
            assert key[Attribute.NEVER_EXTRACTABLE] is True
            assert key[Attribute.ALWAYS_SENSITIVE] is True
            assert key[Attribute.TOKEN] is True
            assert key[Attribute.LABEL] == ref.label
            with pytest.raises(p11_errors.AttributeSensitive):
                key[secret_attr]
    finally:
        session.close()


def test_key_survives_reconnect_and_threads(hsm_store: PKCS11KeyStore) -> None:
    ref = hsm_store.generate(KeyAlgorithm.EC_P256, label="threads")
    hsm_store.close()  # next use reopens and finds the key by CKA_ID
    public = PublicKey.from_der(ref.public_key_der)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                digest = hashlib.sha256(f"{n}/{i}".encode()).digest()
                sig = hsm_store.sign_digest(
                    ref.id, SignatureScheme.ECDSA_SHA256, digest, actor=f"t{n}", purpose="p"
                )
                verify_digest(public, SignatureScheme.ECDSA_SHA256, digest, sig)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def test_destroy_removes_token_objects(
    hsm_store: PKCS11KeyStore, database: Database, softhsm: str
) -> None:
    ref = hsm_store.generate(KeyAlgorithm.EC_P256, label="to destroy")
    hsm_store.destroy(ref.id)
    with database.session() as session:
        assert session.scalar(select(KeyRow.state).where(KeyRow.id == ref.id)) == "destroyed"
    with pytest.raises(KeyUseError, match="destroyed"):
        hsm_store.sign_digest(
            ref.id, SignatureScheme.ECDSA_SHA256, bytes(32), actor="a", purpose="p"
        )
    session = pkcs11.lib(MODULE).get_token(token_label=softhsm).open()
    try:
        assert list(session.get_objects({Attribute.ID: ref.id.encode()})) == []
    finally:
        session.close()


def test_sm2_is_refused(hsm_store: PKCS11KeyStore) -> None:
    assert KeyAlgorithm.SM2 not in hsm_store.supported_algorithms()
    with pytest.raises(KeyUseError, match="SM2"):
        hsm_store.generate(KeyAlgorithm.SM2, label="sm2")


def test_ed25519_is_refused(hsm_store: PKCS11KeyStore, database: Database) -> None:
    # supported_algorithms() stays truthful: every algorithm is either offered or refused.
    assert KeyAlgorithm.ED25519 not in hsm_store.supported_algorithms()
    assert pkcs11_store.SUPPORTED | set(pkcs11_store.UNSUPPORTED) == set(KeyAlgorithm)
    assert not pkcs11_store.SUPPORTED & set(pkcs11_store.UNSUPPORTED)
    with pytest.raises(KeyUseError, match="Ed25519 is not offered by the PKCS#11 store"):
        hsm_store.generate(KeyAlgorithm.ED25519, label="witness")
    ref = hsm_store.generate(KeyAlgorithm.EC_P256, label="not a witness")
    with pytest.raises(KeyUseError, match="Ed25519 is not offered by the PKCS#11 store"):
        hsm_store.sign_message(
            ref.id, SignatureScheme.ED25519, b"cosignature/v1\n", actor="a", purpose="p"
        )
    with pytest.raises(KeyUseError, match="use sign_digest"):
        hsm_store.sign_message(ref.id, SignatureScheme.ECDSA_SHA256, b"m", actor="a", purpose="p")
    with pytest.raises(KeyUseError, match="use sign_message"):
        hsm_store.sign_digest(ref.id, SignatureScheme.ED25519, bytes(32), actor="a", purpose="p")
    with pytest.raises(KeyUseError, match="use sign_message"):
        hsm_store.sign_digests(ref.id, SignatureScheme.ED25519, [bytes(32)], actor="a", purpose="p")
    assert key_uses(database, ref.id) == []


def test_scheme_must_fit(hsm_store: PKCS11KeyStore) -> None:
    ref = hsm_store.generate(KeyAlgorithm.EC_P256, label="fit")
    with pytest.raises(KeyUseError, match="does not fit"):
        hsm_store.sign_digest(
            ref.id, SignatureScheme.RSA_PKCS1_SHA256, bytes(32), actor="a", purpose="p"
        )


def test_unavailable_token(softhsm: str, database: Database, clock: FixedClock) -> None:
    cases = [
        (PKCS11KeyStore(database, MODULE, softhsm, "9999", clock), "PIN was rejected"),
        (PKCS11KeyStore(database, "/nonexistent/libp11.so", softhsm, PIN, clock), "does not"),
        (PKCS11KeyStore(database, MODULE, "no-such-token", PIN, clock), "no PKCS#11 token"),
    ]
    for store, message in cases:
        with pytest.raises(KeyStoreUnavailableError, match=message) as info:
            store.check()
        assert "9999" not in str(info.value) and PIN not in repr(store)
        with pytest.raises(KeyStoreUnavailableError):
            store.generate(KeyAlgorithm.EC_P256, label="x")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_verifies_token_signatures(hsm_store: PKCS11KeyStore, tmp_path: Path) -> None:
    message = b"medication order 17: 5 mg, twice daily\n"
    (tmp_path / "msg").write_bytes(message)
    digest = hashlib.sha256(message).digest()
    checks = [
        (KeyAlgorithm.EC_P256, SignatureScheme.ECDSA_SHA256, []),
        (KeyAlgorithm.RSA_2048, SignatureScheme.RSA_PKCS1_SHA256, []),
        (
            KeyAlgorithm.RSA_2048,
            SignatureScheme.RSA_PSS_SHA256,
            ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"],
        ),
    ]
    for algorithm, scheme, options in checks:
        ref = hsm_store.generate(algorithm, label=f"openssl {scheme}")
        (tmp_path / "pub.pem").write_text(PublicKey.from_der(ref.public_key_der).pem())
        signature = hsm_store.sign_digest(ref.id, scheme, digest, actor="a", purpose="interop")
        (tmp_path / "sig").write_bytes(signature)
        result = subprocess.run(
            [
                "openssl",
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                *options,
                "-signature",
                "sig",
                "msg",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, (scheme, result.stdout, result.stderr)
        assert "Verified OK" in result.stdout


def test_reservation_on_the_token(hsm_store: PKCS11KeyStore, database: Database) -> None:
    """The PKCS#11 store reserves through the same shared code: the row first, then
    signatures on the token with no database write, refused when used up or destroyed."""
    from medsign.keys import AllowanceSpentError, reservation_covering
    from medsign.tsa import SerialAllocator

    ref = hsm_store.generate(KeyAlgorithm.EC_P256, label="hsm tsa")
    serials = SerialAllocator(database, name="hsm-test")
    serials.ensure_counter()
    allowance = hsm_store.reserve(
        ref.id,
        SignatureScheme.ECDSA_SHA256,
        3,
        actor="tsa",
        purpose="timestamp",
        seconds=60,
        claim=serials.claim,
    )
    [use] = key_uses(database, ref.id)
    assert (use.uses, use.serial_first, use.serial_last) == (3, 1, 3)
    public = PublicKey.from_der(ref.public_key_der)
    numbers = [allowance.take() for _ in range(3)]
    digests = [hashlib.sha256(bytes([n])).digest() for n in numbers]
    signatures = [allowance.sign_digest(numbers[0], digests[0])]
    signatures += allowance.sign_digests(list(zip(numbers[1:], digests[1:], strict=True)))
    for digest, signature in zip(digests, signatures, strict=True):
        verify_digest(public, SignatureScheme.ECDSA_SHA256, digest, signature)
    assert all(reservation_covering(database, ref.id, n) == use for n in numbers)
    with pytest.raises(AllowanceSpentError):
        allowance.take()
    assert len(key_uses(database, ref.id)) == 1

    second = hsm_store.reserve(
        ref.id,
        SignatureScheme.ECDSA_SHA256,
        3,
        actor="tsa",
        purpose="timestamp",
        seconds=60,
        claim=serials.claim,
    )
    number = second.take()
    hsm_store.destroy(ref.id)
    with pytest.raises(KeyUseError, match="destroyed"):
        second.sign_digest(number, digests[0])
    with pytest.raises(KeyUseError, match="destroyed"):
        hsm_store.reserve(
            ref.id,
            SignatureScheme.ECDSA_SHA256,
            3,
            actor="tsa",
            purpose="timestamp",
            seconds=60,
            claim=serials.claim,
        )
    assert len(key_uses(database, ref.id)) == 2
