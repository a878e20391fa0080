import pytest

from app.jobs.service import retry_delay_s


@pytest.mark.parametrize(
    ("attempts", "base"),
    [(0, 15), (1, 15), (2, 60), (3, 240), (4, 960), (5, 3600), (6, 3600), (10_000, 3600)],
)
def test_delay_grows_by_four_and_caps_at_an_hour(attempts: int, base: float) -> None:
    assert retry_delay_s(attempts, 0.5) == pytest.approx(base)


@pytest.mark.parametrize("attempts", [1, 2, 3, 4, 5, 50])
def test_jitter_stays_within_twenty_percent(attempts: int) -> None:
    middle = retry_delay_s(attempts, 0.5)
    low, high = retry_delay_s(attempts, 0.0), retry_delay_s(attempts, 0.999999)
    assert low == pytest.approx(middle * 0.8)
    assert high == pytest.approx(middle * 1.2, rel=1e-5)
    for i in range(100):
        assert low <= retry_delay_s(attempts, i / 100) < middle * 1.2


def test_jitter_spreads_jobs_failing_together() -> None:
    delays = {round(retry_delay_s(1, i / 10), 6) for i in range(10)}
    assert len(delays) == 10


def test_parameters_are_overridable() -> None:
    assert retry_delay_s(3, 0.5, base_s=1, factor=2, cap_s=100, jitter=0) == 4
    assert retry_delay_s(30, 0.5, base_s=1, factor=2, cap_s=100, jitter=0) == 100
