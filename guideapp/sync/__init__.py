"""Offline-first sync: the change log, pull and push (design/SYNC.md)."""
