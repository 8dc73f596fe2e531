"""Evidence: canonical event records in an append-only store (the Merkle log builds on it)."""

from medsign.evidence.events import (
    EVENT_VERSION,
    EvidenceEvent,
    list_events,
    record_event,
    record_events,
)

__all__ = ["EVENT_VERSION", "EvidenceEvent", "list_events", "record_event", "record_events"]
