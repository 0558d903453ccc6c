"""Offline-first sync for phones: pull and push over the change log (docs/sync.md)."""
