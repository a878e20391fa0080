"""The job kinds and periodic tasks of the product, registered into the worker registry."""

from __future__ import annotations

from app.clips.tasks import fail_abandoned_transcodes, purge_clip
from app.exemplars.tasks import REFRESH_INTERVAL_S, refresh_exemplar_scores
from app.uploads.tasks import expire_uploads
from workers.registry import registry
from workers.transcode import transcode_clip

registry.add("transcode_clip", transcode_clip)
registry.add("purge_clip", purge_clip)
# Runs in every worker; the sweep is one guarded UPDATE per expired upload, safe to overlap.
registry.register_periodic("uploads.expire", 300, expire_uploads)
registry.register_periodic("clips.fail_abandoned_transcodes", 60, fail_abandoned_transcodes)
registry.register_periodic("exemplars.refresh_scores", REFRESH_INTERVAL_S, refresh_exemplar_scores)
