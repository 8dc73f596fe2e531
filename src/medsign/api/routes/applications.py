"""Placeholder router; filled in by the work on the signing service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
