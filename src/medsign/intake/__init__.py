"""Intake: signature requests from applications — validation, idempotency, states, expiry."""
