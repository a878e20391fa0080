"""Full-text search over clips' transcripts and feedback (GET /v1/search): the index, kept by
the owners of those texts through app.search.service, and the search itself."""
