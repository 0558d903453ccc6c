"""Idempotency-Key: a retried POST returns its first response and applies nothing twice."""
