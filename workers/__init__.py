"""Worker processes: the job loop and the job handlers."""
