"""What can be wrong with a PDF or a PDF signing request; one code each, shared by signing,
forms and verification."""

from __future__ import annotations

from medsign.errors import InputError, StateError


class PdfUnreadableError(InputError):
    code = "pdf-unreadable"
    title = "The file is not a PDF that can be read cleanly"


class PdfEncryptedError(InputError):
    code = "pdf-encrypted"
    title = "Encrypted PDFs cannot be signed or checked"


class PdfTooLargeError(InputError):
    code = "pdf-too-large"
    title = "The PDF is over the configured size limit"
    status = 413


class FieldAlreadySignedError(StateError):
    code = "field-already-signed"
    title = "The signature field already holds a signature"


class PlacementError(InputError):
    code = "invalid-placement"
    title = "The signature cannot be placed there"


__all__ = [
    "FieldAlreadySignedError",
    "PdfEncryptedError",
    "PdfTooLargeError",
    "PdfUnreadableError",
    "PlacementError",
]
