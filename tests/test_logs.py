from __future__ import annotations

import io
import json
import logging

from medsign.logs import JSONFormatter

PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----"


def _emit(message: str, **extra: object) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("medsign.test.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    # Other tests may have raised levels on parent loggers; this one must emit regardless.
    logger.setLevel(logging.DEBUG)
    logger.disabled = False
    logger.warning(message, extra=extra)
    return json.loads(stream.getvalue())


def test_secret_fields_are_redacted() -> None:
    record = _emit(
        "signing", pin="123456", admin_token="msadm_x", master_secret=b"k" * 32, key_id="key_abc"
    )
    assert record["pin"] == "[redacted]"
    assert record["admin_token"] == "[redacted]"
    assert record["master_secret"] == "[redacted]"
    assert record["key_id"] == "key_abc"


def test_private_key_pem_never_reaches_the_log() -> None:
    record = _emit(f"oops {PEM}", detail={"nested": PEM})
    text = json.dumps(record)
    assert "MIGHAgEAMBMG" not in text
    assert "[redacted]" in text


def test_bytes_are_summarised_not_dumped() -> None:
    record = _emit("blob", blob=b"\x01\x02\x03")
    assert record["blob"] == "<3 bytes>"
