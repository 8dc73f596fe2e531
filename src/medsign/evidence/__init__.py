"""Evidence: canonical event records in an append-only store (the Merkle log builds on it)."""

from medsign.evidence.events import EVENT_VERSION, EvidenceEvent, list_events, record_event

__all__ = ["EVENT_VERSION", "EvidenceEvent", "list_events", "record_event"]
