"""The job queue: a table in the application database (see DESIGN.md §2)."""
