"""Outgoing webhooks: Standard Webhooks signing (signing.py) and the SSRF-safe delivery client
(delivery.py). Pure library code: no database, no FastAPI; the webhooks domain builds on it."""
