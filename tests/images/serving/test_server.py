"""The predictor process over real HTTP: protocols, validation, metrics, prediction log, fault injection."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import MODEL_NAME, MODEL_VERSION, Predictor, Trained, predictor_process

from shipyard_spec.contract import REPLAY_HEADER, Metric, Outcome

V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"


def v2_request(columns: dict[str, list[Any]], numeric: set[str]) -> dict[str, Any]:
    tensors = [
        {
            "name": name,
            "shape": [len(values)],
            "datatype": "FP64" if name in numeric else "BYTES",
            "data": values,
        }
        for name, values in columns.items()
    ]
    return {"id": "req-1", "inputs": tensors}


@pytest.fixture(scope="module")
def numeric(trained: Trained) -> set[str]:
    return {name for name, values in trained.columns.items() if any(isinstance(v, float) for v in values)}


def test_ready_and_live(predictor: Predictor) -> None:
    for path in (
        "/",
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{MODEL_NAME}/ready",
        f"/v1/models/{MODEL_NAME}",
    ):
        assert predictor.get(path)[0] == 200, path


def test_v1_records_give_the_training_pipeline_probabilities(
    predictor: Predictor, trained: Trained, rows: Callable[[int, int], list[dict[str, Any]]]
) -> None:
    everything = rows(0, len(trained.probabilities))
    status, body = predictor.post(V1, {"instances": everything})
    assert status == 200
    assert body["predictions"] == trained.probabilities


def test_v1_columns_give_the_same_answer(predictor: Predictor, trained: Trained) -> None:
    first = {name: values[:32] for name, values in trained.columns.items()}
    status, body = predictor.post(V1, {"inputs": first})
    assert (status, body["predictions"]) == (200, trained.probabilities[:32])


def test_v2_tensors_give_the_training_pipeline_probabilities(
    predictor: Predictor, trained: Trained, numeric: set[str]
) -> None:
    status, body = predictor.post(V2, v2_request(trained.columns, numeric))
    assert status == 200
    [output] = body["outputs"]
    assert (body["id"], body["model_version"], output["name"], output["datatype"]) == (
        "req-1",
        MODEL_VERSION,
        "probability",
        "FP64",
    )
    assert output["shape"] == [len(trained.probabilities)]
    assert output["data"] == trained.probabilities


def _set(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**record, **changes}


def _without(record: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != name}


V1_BAD_BODIES: list[Any] = [
    pytest.param(lambda r: {"instances": [_without(r, "tenure")]}, "tenure", id="missing-feature"),
    pytest.param(lambda r: {"instances": [_set(r, shoe_size=44)]}, "shoe_size", id="unknown-feature"),
    pytest.param(lambda r: {"instances": [_set(r, tenure="twelve")]}, "tenure", id="non-numeric-string"),
    pytest.param(lambda r: {"instances": [_set(r, tenure=[1])]}, "tenure", id="list-for-number"),
    pytest.param(lambda r: {"instances": [_set(r, tenure=True)]}, "tenure", id="bool-for-number"),
    pytest.param(lambda r: {"instances": [_set(r, contract=2)]}, "contract", id="number-for-category"),
    pytest.param(lambda r: {"instances": []}, "empty batch", id="empty-batch"),
    pytest.param(lambda r: {"instances": [r] * 10_001}, "10000", id="over-max-batch"),
    pytest.param(lambda r: {"rows": [r]}, "instances", id="no-instances"),
    pytest.param(lambda r: {"instances": r}, "list of records", id="instances-not-list"),
    pytest.param(lambda r: [r], "expected an object", id="body-is-list"),
    pytest.param(lambda r: {"instances": [r], "ids": [1, 2]}, "ids", id="ids-wrong-length"),
]


@pytest.mark.parametrize(("make_body", "named"), V1_BAD_BODIES)
def test_bad_v1_input_is_a_400_naming_the_field_and_the_server_keeps_serving(
    predictor: Predictor, rows: Callable[[int, int], list[dict[str, Any]]], make_body: Callable, named: str
) -> None:
    [record] = rows(0, 1)
    status, body = predictor.post(V1, make_body(record))
    assert status == 400
    assert named in body["error"]
    assert predictor.post(V1, {"instances": [record]})[0] == 200


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_body_that_is_not_json_is_a_400(predictor: Predictor, content_type: str) -> None:
    status, body = predictor.post(V1, b"{not json", content_type)
    assert status == 400
    assert "format" in body["error"] or "not JSON" in body["error"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param(
            lambda t: t.update(datatype="BYTES", data=["1"] * len(t["data"])), "tenure", id="wrong-datatype"
        ),
        pytest.param(lambda t: t.update(name="shoe_size"), "shoe_size", id="unknown-tensor"),
        pytest.param(lambda t: t.update(shape=[99]), "shape", id="wrong-shape"),
    ],
)
def test_bad_v2_input_is_a_400_naming_the_tensor(
    predictor: Predictor, trained: Trained, numeric: set[str], change: Callable, named: str
) -> None:
    request = v2_request({n: v[:2] for n, v in trained.columns.items()}, numeric)
    change(next(t for t in request["inputs"] if t["name"] == "tenure"))
    status, body = predictor.post(V2, request)
    assert (status, named in body["error"]) == (400, True)


def test_missing_v2_tensor_is_a_400(predictor: Predictor, trained: Trained, numeric: set[str]) -> None:
    request = v2_request({n: v[:2] for n, v in trained.columns.items() if n != "contract"}, numeric)
    status, body = predictor.post(V2, request)
    assert status == 400
    assert "missing feature(s) ['contract']" in body["error"]


def test_counters_move_by_outcome(
    predictor: Predictor, rows: Callable[[int, int], list[dict[str, Any]]]
) -> None:
    before = {o: predictor.counter(o) for o in Outcome}
    assert predictor.post(V1, {"instances": rows(0, 3)})[0] == 200
    assert predictor.post(V1, {"instances": []})[0] == 400
    after = {o: predictor.counter(o) for o in before}
    assert {o: after[o] - before[o] for o in Outcome} == {
        Outcome.SUCCESS: 1,
        Outcome.CLIENT_ERROR: 1,
        Outcome.SERVER_ERROR: 0,
    }
    for histogram in (Metric.REQUEST_DURATION, Metric.HTTP_REQUEST_DURATION):
        assert predictor.sample(f"{histogram}_count") > 0


def _read_log(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [
        (p, json.loads(line))
        for p in sorted(root.glob("*/date=*/part-*.jsonl"))
        for line in p.read_text().splitlines()
    ]


def test_prediction_log_records_inputs_score_version_and_id(
    predictor: Predictor, trained: Trained, rows: Callable[[int, int], list[dict[str, Any]]]
) -> None:
    sent = rows(len(trained.probabilities) - 3, len(trained.probabilities))  # the all-missing rows at the end
    status, _ = predictor.post(V1, {"instances": sent, "ids": ["a", "b", "c"]})
    assert status == 200
    deadline = time.monotonic() + 10
    while not (found := [(p, r) for p, r in _read_log(predictor.log_root) if r.get("id") in {"a", "b", "c"}]):
        assert time.monotonic() < deadline, f"no prediction log under {predictor.log_root}"
        time.sleep(0.1)
    logged = sorted((r for _, r in found), key=lambda r: r["id"])
    assert [r["inputs"] for r in logged] == sent
    assert [r["score"] for r in logged] == trained.probabilities[-3:]
    assert {(r["model_name"], r["model_version"]) for r in logged} == {(MODEL_NAME, MODEL_VERSION)}
    assert {(p.parent.parent.name, p.parent.name) for p, _ in found} == {
        (MODEL_NAME, f"date={logged[0]['ts'][:10]}")
    }
    assert not list(predictor.log_root.glob("**/*.tmp"))


def test_a_replayed_request_is_answered_but_never_logged(
    predictor: Predictor, trained: Trained, rows: Callable[[int, int], list[dict[str, Any]]]
) -> None:
    """The rollout's replays carry REPLAY_HEADER: copies of client traffic must not become traffic
    the drift step and the next rollout read as production."""
    sent = rows(0, 2)
    replayed = predictor.post(V1, {"instances": sent, "ids": ["r1", "r2"]}, headers={REPLAY_HEADER: "1"})
    assert replayed == (200, {"predictions": trained.probabilities[:2]})
    status, _ = predictor.post(V1, {"instances": sent, "ids": ["c1", "c2"]})  # then a client's
    assert status == 200
    deadline = time.monotonic() + 10
    while not (ids := {r.get("id") for _, r in _read_log(predictor.log_root)}) >= {"c1", "c2"}:
        assert time.monotonic() < deadline, f"no prediction log under {predictor.log_root}"
        time.sleep(0.1)
    assert not ids & {"r1", "r2"}


def test_fault_never_ready_is_live_but_not_ready(trained: Trained, tmp_path: Path) -> None:
    with predictor_process(trained.model_dir, tmp_path, "--fault_never_ready", ready=False) as faulty:
        assert faulty.get("/v2/health/live")[0] == 200
        assert faulty.get(f"/v2/models/{MODEL_NAME}/ready")[0] == 503
        assert faulty.get("/v2/health/ready")[0] == 503


def test_fault_error_rate_gives_500s_counted_as_server_errors_across_workers(
    trained: Trained, tmp_path: Path, rows: Callable[[int, int], list[dict[str, Any]]]
) -> None:
    args = ("--fault_error_rate", "0.5", "--fault_latency_ms", "5", "--workers", "2")
    with predictor_process(trained.model_dir, tmp_path, *args) as faulty:
        statuses = [faulty.post(V1, {"instances": rows(0, 1)})[0] for _ in range(60)]
        assert set(statuses) == {200, 500}
        # Summed over both workers, whichever one answers the scrape.
        for _ in range(3):
            assert (faulty.counter(Outcome.SUCCESS), faulty.counter(Outcome.SERVER_ERROR)) == (
                statuses.count(200),
                statuses.count(500),
            )
