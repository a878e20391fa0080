"""Domain events: every change recorded once, in the transaction that makes it, with a
per-organization sequence; replayed over HTTP, delivered as webhooks, streamed to apps."""
