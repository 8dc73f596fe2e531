"""One verifier for data signatures (later also PDFs and evidence packages) → a structured report.

Checks inside this package raise ``CheckFailure``; only the ``Verifier`` collects them into a
``Report`` (passed / failed / indeterminate with an ETSI EN 319 102-1 sub-indication).
"""

from medsign.verify.chain import TrustAnchor, TrustStore, load_certificates
from medsign.verify.data import CMSSignature, RawSignature, SignedContent, Verifier, verify_many
from medsign.verify.report import (
    Check,
    CheckName,
    Indication,
    Report,
    SignerIdentity,
    SubIndication,
    TimeSource,
    TimestampInfo,
)
from medsign.verify.status import (
    DatabaseStatusSource,
    NoStatusSource,
    StatusEvidence,
    StatusSource,
    Suspension,
)

__all__ = [
    "CMSSignature",
    "Check",
    "CheckName",
    "DatabaseStatusSource",
    "Indication",
    "NoStatusSource",
    "RawSignature",
    "Report",
    "SignedContent",
    "SignerIdentity",
    "StatusEvidence",
    "StatusSource",
    "SubIndication",
    "Suspension",
    "TimeSource",
    "TimestampInfo",
    "TrustAnchor",
    "TrustStore",
    "Verifier",
    "load_certificates",
    "verify_many",
]
