"""Print the OpenAPI document (`make openapi` writes it to openapi/openapi.json)."""

from __future__ import annotations

import json
import sys
from typing import Any

from app.config import Settings


def openapi_document() -> dict[str, Any]:
    from app.main import create_app

    # A fixed secret: the document must not depend on (or create) local state.
    settings = Settings(secret_key="openapi-export", embedded_worker=False)  # noqa: S106
    app = create_app(settings)
    return app.openapi()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
