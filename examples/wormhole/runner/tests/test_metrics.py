from prometheus_client.parser import text_string_to_metric_families

from runner.metrics import TRIGGER_DELAY_BUCKETS, RunnerMetrics


def families(metrics: RunnerMetrics) -> dict[str, str]:
    """name -> type of every metric family in the exposition."""
    text = metrics.render().decode()
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_the_exposition_has_the_agreed_names_and_the_process_metrics() -> None:
    found = families(RunnerMetrics())
    assert found["wormhole_runner_runs"] == "counter"
    assert found["wormhole_runner_run_duration_seconds"] == "histogram"
    assert found["wormhole_runner_trigger_delay_seconds"] == "histogram"
    assert found["process_cpu_seconds"] == "counter"
    assert "python_info" in found


def test_every_outcome_series_exists_before_the_first_run() -> None:
    text = RunnerMetrics(process_metrics=False).render().decode()
    for outcome in ("started", "succeeded", "failed"):
        assert f'wormhole_runner_runs_total{{outcome="{outcome}"}} 0.0' in text


def test_trigger_delay_buckets_bracket_the_5s_sla() -> None:
    assert 5.0 in TRIGGER_DELAY_BUCKETS
    assert sorted(TRIGGER_DELAY_BUCKETS) == list(TRIGGER_DELAY_BUCKETS)
    below = [b for b in TRIGGER_DELAY_BUCKETS if b < 5.0]
    above = [b for b in TRIGGER_DELAY_BUCKETS if 5.0 < b <= 10.0]
    assert len(below) >= 4
    assert len(above) >= 2


def test_a_clock_skew_never_observes_a_negative_delay() -> None:
    metrics = RunnerMetrics(process_metrics=False)
    metrics.run_started(-0.2)
    assert metrics.registry.get_sample_value("wormhole_runner_trigger_delay_seconds_sum") == 0.0
    bucket = metrics.registry.get_sample_value(
        "wormhole_runner_trigger_delay_seconds_bucket", {"le": "0.1"}
    )
    assert bucket == 1
