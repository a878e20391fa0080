"""ASGI entry point for uvicorn (`workers.asgi:app`, what `peerpitch serve` runs): the API,
plus an in-process worker when PEERPITCH_EMBEDDED_WORKER allows it (the default set-up of
`make run`: one process, no services)."""

import gc

from app.main import create_app
from workers.main import embedded_worker

app = create_app(background=embedded_worker)

# What start-up built (modules, models, routes, the app) lives as long as the process: moved
# out of the collector's reach, so a full collection (a pause every waiting request shares)
# walks only what requests left behind. Tail latency under load; see README "Performance".
gc.collect()
gc.freeze()
