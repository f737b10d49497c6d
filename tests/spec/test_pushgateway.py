"""shipyard_spec.pushgateway against a real Pushgateway: a push replaces the job's last push for the
model (a new version's figures remove the old version's), models stay apart, and without a URL
nothing is pushed or counted as failed."""

from __future__ import annotations

import logging

from support.servers import metric_samples, pushgateway_server

from shipyard_spec.contract import Metric, MetricLabel, PushJob
from shipyard_spec.pushgateway import Pushgateway, gauge


def weight(model: str, version: str, value: float):
    labels = [MetricLabel.MODEL, MetricLabel.VERSION]
    return [gauge(Metric.CANARY_WEIGHT, "canary weight", labels, [((model, version), value)])]


def test_a_push_replaces_the_last_one_of_its_job_and_model(tmp_path):
    with pushgateway_server(tmp_path) as url:
        churn = Pushgateway(url, PushJob.ROLLOUT, "churn")
        fraud = Pushgateway(url, PushJob.ROLLOUT, "fraud")
        assert churn.push(weight("churn", "7", 100))
        assert fraud.push(weight("fraud", "2", 20))
        assert churn.push(weight("churn", "8", 50))
        pushed = {
            (dict(labels)["model"], dict(labels)["version"]): value
            for labels, value in metric_samples(url, Metric.CANARY_WEIGHT).items()
        }
    assert pushed == {("churn", "8"): 50, ("fraud", "2"): 20}  # v7's series is gone
    assert churn.status() == {"url": url, "job": "shipyard_rollout", "pushed": 2, "failed": 0}


def test_without_a_url_nothing_is_pushed_and_nothing_failed(caplog, monkeypatch):
    monkeypatch.delenv("SHIPYARD_PUSHGATEWAY_URL", raising=False)
    caplog.set_level(logging.INFO, logger="shipyard_spec.pushgateway")
    gateway = Pushgateway.from_env(PushJob.DRIFT, "churn")
    assert gateway.push(weight("churn", "1", 1)) is False
    assert gateway.push(weight("churn", "1", 1)) is False
    assert gateway.status() == {"url": None, "job": "shipyard_drift", "pushed": 0, "failed": 0}
    assert caplog.text.count("SHIPYARD_PUSHGATEWAY_URL not set") == 1  # said once, not per push
