"""ASGI entry point for uvicorn (`workers.asgi:app`, what `peerpitch serve` runs): the API,
plus an in-process worker when PEERPITCH_EMBEDDED_WORKER allows it (the default set-up of
`make run`: one process, no services)."""

from app.main import create_app
from workers.main import embedded_worker

app = create_app(background=embedded_worker)
