"""Certificate authority: profiles as data, issuance, renewal, revocation, hold/release, RA mode.

CRL generation and the OCSP responder live in ``medsign.ca.crl`` and ``medsign.ca.ocsp``.
"""

from medsign.ca.authority import (
    REVOCATION_REASONS,
    CARecord,
    CertificateAuthority,
    CertificateEvent,
    CertificateRecord,
)
from medsign.ca.csr import CertificateRequest, verify_csr
from medsign.ca.names import parse_serial, parse_subject, render_name
from medsign.ca.profiles import DEFAULT_PROFILES, Profile, ProfileSet, get_profile
from medsign.ca.ra import RegistrationAuthority
from medsign.ca.signing import sign_structure

__all__ = [
    "DEFAULT_PROFILES",
    "REVOCATION_REASONS",
    "CARecord",
    "CertificateAuthority",
    "CertificateEvent",
    "CertificateRecord",
    "CertificateRequest",
    "Profile",
    "ProfileSet",
    "RegistrationAuthority",
    "get_profile",
    "parse_serial",
    "parse_subject",
    "render_name",
    "sign_structure",
    "verify_csr",
]
