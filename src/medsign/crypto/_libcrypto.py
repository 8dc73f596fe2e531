"""A thin ctypes binding to the system OpenSSL 3 ``libcrypto`` for SM2.

Why a binding: ``cryptography`` does not expose SM2 signing, and pure-Python SM2 manages about
60 signatures per second. OpenSSL 3 has constant-time, assembly-backed SM2 and is already on
every supported host (Debian ``libssl3``). See ``docs/adr/0001-sm2-library.md``.

Only the few EVP calls SM2 needs are declared here, each with explicit ``argtypes`` and
``restype`` so pointers are never truncated to C ``int``. ctypes releases the GIL around
foreign calls, so signing in a thread pool runs in parallel.

The library is located, in order, from ``MEDSIGN_LIBCRYPTO`` (a path), ``libcrypto.so.3``,
then ``ctypes.util.find_library("crypto")``; anything older than 3.0 is refused.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import POINTER, c_char_p, c_int, c_long, c_size_t, c_ubyte, c_ulong, c_void_p

from medsign.errors import ConfigurationError

__all__ = ["OpenSSLError", "library", "openssl_errors"]

_MIN_VERSION = 0x30000000


class OpenSSLError(Exception):
    """A libcrypto call failed; carries the drained OpenSSL error queue as text."""


def _candidates() -> list[str]:
    names: list[str] = []
    explicit = os.environ.get("MEDSIGN_LIBCRYPTO")
    if explicit:
        names.append(explicit)
    names.append("libcrypto.so.3")
    found = ctypes.util.find_library("crypto")
    if found:
        names.append(found)
    return names


def _declare(lib: ctypes.CDLL) -> None:
    pp = POINTER(c_void_p)
    pp_bytes = POINTER(POINTER(c_ubyte))
    signatures: dict[str, tuple[list[type], type | None]] = {
        "OpenSSL_version_num": ([], c_ulong),
        "ERR_get_error": ([], c_ulong),
        "ERR_clear_error": ([], None),
        "ERR_error_string_n": ([c_ulong, c_char_p, c_size_t], None),
        "EVP_PKEY_free": ([c_void_p], None),
        "EVP_PKEY_is_a": ([c_void_p, c_char_p], c_int),
        "EVP_PKEY_CTX_new_from_name": ([c_void_p, c_char_p, c_char_p], c_void_p),
        "EVP_PKEY_CTX_new_from_pkey": ([c_void_p, c_void_p, c_char_p], c_void_p),
        "EVP_PKEY_CTX_free": ([c_void_p], None),
        "EVP_PKEY_keygen_init": ([c_void_p], c_int),
        "EVP_PKEY_generate": ([c_void_p, pp], c_int),
        "EVP_PKEY_sign_init": ([c_void_p], c_int),
        "EVP_PKEY_sign": ([c_void_p, c_void_p, POINTER(c_size_t), c_char_p, c_size_t], c_int),
        "EVP_PKEY_verify_init": ([c_void_p], c_int),
        "EVP_PKEY_verify": ([c_void_p, c_char_p, c_size_t, c_char_p, c_size_t], c_int),
        "d2i_AutoPrivateKey": ([pp, pp_bytes, c_long], c_void_p),
        "d2i_PUBKEY": ([pp, pp_bytes, c_long], c_void_p),
        "i2d_PUBKEY": ([c_void_p, pp_bytes], c_int),
        "EVP_PKEY2PKCS8": ([c_void_p], c_void_p),
        "i2d_PKCS8_PRIV_KEY_INFO": ([c_void_p, pp_bytes], c_int),
        "PKCS8_PRIV_KEY_INFO_free": ([c_void_p], None),
        "CRYPTO_free": ([c_void_p, c_char_p, c_int], None),
    }
    for name, (argtypes, restype) in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = restype


def _load() -> ctypes.CDLL:
    problems: list[str] = []
    for name in _candidates():
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            problems.append(f"{name}: {exc}")
            continue
        try:
            _declare(lib)
        except AttributeError as exc:  # an OpenSSL 1.1 libcrypto lacks the 3.0 symbols
            problems.append(f"{name}: {exc}")
            continue
        version = int(lib.OpenSSL_version_num())
        if version < _MIN_VERSION:
            problems.append(f"{name}: OpenSSL {version:#x} is older than 3.0")
            continue
        return lib
    raise ConfigurationError(
        "OpenSSL 3 libcrypto not found (set MEDSIGN_LIBCRYPTO): " + "; ".join(problems),
        public="SM2 support is not available on this server",
    )


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """The loaded libcrypto, loaded once on first use so importing medsign never fails."""
    global _lib
    if _lib is None:
        with _lock:
            if _lib is None:
                _lib = _load()
    return _lib


def openssl_errors(lib: ctypes.CDLL) -> str:
    """Drain this thread's OpenSSL error queue into one line (it must not leak into later calls)."""
    messages: list[str] = []
    buf = ctypes.create_string_buffer(256)
    while True:
        code = lib.ERR_get_error()
        if not code:
            break
        lib.ERR_error_string_n(code, buf, len(buf))
        messages.append(buf.value.decode("ascii", "replace"))
    return "; ".join(messages) or "no OpenSSL error recorded"
