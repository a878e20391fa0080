"""The default sales-stage taxonomy every new organization starts with (DESIGN.md §1)."""

from __future__ import annotations

DEFAULT_STAGES: list[dict[str, object]] = [
    {
        "key": "prospecting",
        "name": "Prospecting",
        "description": "Finding and qualifying the right prospects and getting a first contact.",
        "skills": [
            ("qualification", "Qualification (customer selection criteria)"),
            ("call_cadence", "Call cadence"),
            ("persistence", "Persistence (6+ attempts, cold-call reluctance)"),
        ],
    },
    {
        "key": "contact_to_trial",
        "name": "From contact to trial",
        "description": "Earning trust, understanding needs and showing the product.",
        "skills": [
            ("trust_credibility", "Trust and credibility"),
            ("discovery_questions", "Discovery questions"),
            ("demo", "Demo"),
        ],
    },
    {
        "key": "closing",
        "name": "Closing the sale",
        "description": "Making the value case and getting to a signed decision.",
        "skills": [
            ("value_roi", "Value proposition and ROI"),
            ("urgency", "Urgency"),
            ("follow_up", "Follow-up"),
            ("decision_makers", "Decision makers (budget and authority)"),
        ],
    },
]
