"""A `helm upgrade` after a rollout keeps the rolled-out model: the chart only bootstraps the model.

`lookup` returns nothing under `helm template` (no cluster here), which is the first-install case
the other tests render. For the "object exists" case a harness chart depends on this chart and
calls the same named template (`shipyard.inferenceService`) with a live object in place of the
`lookup` result: the object the chart created, patched by the rollout controller's own
`build_inferenceservice` exactly as the API server applies a JSON merge patch. The real upgrade
against a kube-apiserver is the envtest suite's job.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_template_generator import (
    CHART,
    REPO,
    REQUIRED_VALUES,
    HelmError,
    helm,
    kserve_model_problems,
    render_chart,
    values_args,
)

sys.path[:0] = [str(REPO / "plugins"), str(REPO / "tests" / "plugins" / "rollout")]

# The API server's JSON merge patch, as the fake KServe of the rollout tests applies it.
from fake_kserve import merge_patch  # noqa: E402

from shipyard.rollout.backends import Release  # noqa: E402
from shipyard.rollout.backends.kserve import build_inferenceservice  # noqa: E402
from shipyard_spec.model import KServeTarget  # noqa: E402

PIPELINE = "telco_churn"
BOOTSTRAP = {"storageUri": "s3://shipyard-data/prod/models/telco_churn/1", "modelVersion": "1"}
HARNESS_TEMPLATE = """\
{{- $chart := .Subcharts.shipyard }}
{{- range $pipeline, $bootstrap := $chart.Values.inferenceServices.pipelines }}
{{- $live := get $.Values.live $pipeline }}
{{- $call := dict "root" $chart "pipeline" $pipeline "bootstrap" $bootstrap "live" $live }}
---
{{ include "shipyard.inferenceService" $call }}
{{- end }}
"""


def release(version: int, *args: str) -> Release:
    return Release(
        PIPELINE,
        str(version),
        storage_uri=f"s3://shipyard-data/prod/models/{PIPELINE}/{version}",
        args=list(args),
    )


def chart_values(mode: str) -> dict[str, Any]:
    return {
        "inferenceServices": {"enabled": True, "deploymentMode": mode, "pipelines": {PIPELINE: BOOTSTRAP}}
    }


def first_install(mode: str) -> dict[str, Any]:
    return render_chart(chart_values(mode), show_only=["templates/inferenceservices.yaml"])[0]


def after_rollout(
    mode: str, stable: Release, canary: Release | None = None, weight: int = 0
) -> dict[str, Any]:
    """The live object: the chart's first install, then the rollout controller's merge patch."""
    target = KServeTarget(namespace="shipyard", mode=mode.lower())
    patch = build_inferenceservice(target, "telco-churn", PIPELINE, stable, canary, weight)
    live = merge_patch(copy.deepcopy(first_install(mode)), patch)
    live["metadata"].update(uid="0f1e", resourceVersion="4711", generation=3)
    live["status"] = {"observedGeneration": 3}
    return live


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    root = tmp_path_factory.mktemp("harness")
    (root / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "upgrade-harness",
                "version": "0.0.1",
                "dependencies": [{"name": chart["name"], "version": chart["version"]}],
            }
        )
    )
    (root / "charts").mkdir()
    (root / "charts" / chart["name"]).symlink_to(CHART)
    (root / "templates").mkdir()
    (root / "templates" / "live.yaml").write_text(HARNESS_TEMPLATE)
    return root


def upgrade_render(harness: Path, live: dict[str, Any] | None, chart: dict[str, Any]) -> dict[str, Any]:
    """What the chart renders for the InferenceService with these values when `lookup` returns `live`."""
    values = {"shipyard": chart, "live": {PIPELINE: live or {}}}
    with values_args([{"shipyard": REQUIRED_VALUES}], [], [values]) as args:
        template = ["template", "shipyard", str(harness), "--namespace", "shipyard", *args]
        stdout = helm(*template, "--show-only", "templates/live.yaml").stdout
    [rendered] = [doc for doc in yaml.safe_load_all(stdout) if doc]
    return rendered


def rollout_owned(isvc: dict[str, Any]) -> dict[str, Any]:
    """The fields the rollout controller declares (build_inferenceservice), read from an object."""
    predictor = isvc["spec"]["predictor"]
    annotations = isvc["metadata"]["annotations"]
    return {
        "storageUri": predictor["model"]["storageUri"],
        "args": predictor["model"]["args"],
        "canaryTrafficPercent": predictor.get("canaryTrafficPercent"),
        "predictorName": predictor.get("name"),
        "canary": isvc["spec"].get("canary"),
        "stableVersion": annotations.get("shipyard.io/stable-version"),
        "canaryVersion": annotations.get("shipyard.io/canary-version"),
    }


SCENARIOS = {
    "knative-promoted": ("Knative", release(3), None, 0),
    "knative-mid-canary": ("Knative", release(3), release(4, "--fault_latency_ms", "5"), 25),
    "standard-promoted": ("Standard", release(3), None, 0),
    "standard-mid-canary": ("Standard", release(3), release(4), 50),
}


class TestUpgradeAfterRollout:
    def test_no_live_object_renders_the_bootstrap_model_like_a_first_install(self, harness):
        assert upgrade_render(harness, None, chart_values("Knative")) == first_install("Knative")

    @pytest.mark.parametrize("scenario", SCENARIOS, ids=list(SCENARIOS))
    def test_a_second_render_keeps_what_the_rollout_controller_declared(self, harness, scenario):
        mode, stable, canary, weight = SCENARIOS[scenario]
        live = after_rollout(mode, stable, canary, weight)
        rendered = upgrade_render(harness, live, chart_values(mode))
        assert rollout_owned(rendered) == rollout_owned(live)
        assert rollout_owned(rendered) != rollout_owned(first_install(mode))
        # Applied as Helm applies a custom resource (a merge patch of the rendered fields, or server-side
        # apply of them), the upgrade changes nothing the controller owns.
        assert rollout_owned(merge_patch(live, rendered)) == rollout_owned(live)

    def test_every_second_render_is_a_valid_kserve_object(self, harness):
        renders = [
            upgrade_render(harness, after_rollout(*SCENARIOS[s]), chart_values(SCENARIOS[s][0]))
            for s in SCENARIOS
        ]
        assert kserve_model_problems(renders) == []

    def test_changed_bootstrap_values_move_no_traffic_but_the_predictor_shape_follows_the_chart(
        self, harness
    ):
        live = after_rollout("Knative", release(3))
        changed = chart_values("Knative")
        changed["inferenceServices"]["maxReplicas"] = 5
        changed["inferenceServices"]["pipelines"][PIPELINE] = {
            "storageUri": "s3://shipyard-data/x/9",
            "modelVersion": 9,
        }
        rendered = upgrade_render(harness, live, changed)
        assert rendered["spec"]["predictor"]["model"]["storageUri"] == release(3).storage_uri
        assert rendered["spec"]["predictor"]["model"]["args"] == ["--model_version=3"]
        assert rendered["spec"]["predictor"]["maxReplicas"] == 5

    def test_a_deployment_mode_kserve_cannot_change_in_place_is_refused(self, harness):
        live = after_rollout("Knative", release(3))
        with pytest.raises(HelmError, match="runs in Knative mode, which KServe cannot change in place"):
            upgrade_render(harness, live, chart_values("Standard"))
