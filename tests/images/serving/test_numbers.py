"""Strict numbers, one NaN rule for V1 and V2, and out-of-range values counted (issue 12 item 9)."""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from conftest import MODEL_NAME, MODEL_VERSION, Predictor, Trained
from prometheus_client.parser import text_string_to_metric_families

from shipyard_spec.contract import Metric

V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"
Rows = Callable[[int, int], list[dict[str, Any]]]


def _raw_post(predictor: Predictor, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(f"{predictor.url}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _v2_columns(record: dict[str, Any], numeric: set[str]) -> list[dict[str, Any]]:
    return [
        {"name": n, "shape": [1], "datatype": "FP64" if n in numeric else "BYTES", "data": [v]}
        for n, v in record.items()
    ]


@pytest.fixture(scope="module")
def numeric(trained: Trained) -> set[str]:
    return {name for name, values in trained.columns.items() if any(isinstance(v, float) for v in values)}


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "1_000", " 12", "0x1f", "1e999"])
def test_v1_refuses_a_string_that_is_not_a_json_number(predictor: Predictor, rows: Rows, value: str) -> None:
    [record] = rows(0, 1)
    status, body = predictor.post(V1, {"instances": [{**record, "tenure": value}]})
    assert status == 400
    assert "tenure" in body["error"]


def test_v1_accepts_a_json_number_in_quotes(predictor: Predictor, rows: Rows) -> None:
    [record] = rows(0, 1)
    quoted = predictor.post(V1, {"instances": [{**record, "tenure": str(record["tenure"])}]})
    assert quoted == predictor.post(V1, {"instances": [record]})
    assert quoted[0] == 200


def test_nan_is_refused_in_v1_and_v2_and_null_is_missing_in_both(
    predictor: Predictor, rows: Rows, numeric: set[str]
) -> None:
    [record] = rows(0, 1)
    nan_record = {**record, "tenure": float("nan")}
    json_headers = {"content-type": "application/json"}
    # json.dumps writes the non-standard NaN literal, as numpy-minded clients do.
    v1_nan = _raw_post(predictor, V1, json.dumps({"instances": [nan_record]}).encode(), json_headers)
    v2_nan = _raw_post(
        predictor, V2, json.dumps({"inputs": _v2_columns(nan_record, numeric)}).encode(), json_headers
    )
    assert (v1_nan[0], v2_nan[0]) == (400, 400)
    assert "tenure" in v2_nan[1]["error"]

    missing = {**record, "tenure": None}
    v1_null = predictor.post(V1, {"instances": [missing]})
    v2_null = predictor.post(V2, {"inputs": _v2_columns(missing, numeric)})
    assert (v1_null[0], v2_null[0]) == (200, 200)
    assert v1_null[1]["predictions"] == v2_null[1]["outputs"][0]["data"]


def test_nan_in_a_binary_v2_tensor_is_refused(predictor: Predictor, rows: Rows, numeric: set[str]) -> None:
    [record] = rows(0, 1)
    inputs = [t for t in _v2_columns(record, numeric) if t["name"] != "tenure"]
    inputs.append({"name": "tenure", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}})
    header = json.dumps({"inputs": inputs}).encode()
    body = header + struct.pack("<d", float("nan"))
    headers = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }
    status, answer = _raw_post(predictor, V2, body, headers)
    assert status == 400
    assert "tenure" in answer["error"]


def _out_of_range(predictor: Predictor) -> dict[str, float]:
    _, text = predictor.get("/metrics")
    name = Metric.FEATURE_OUT_OF_RANGE.removesuffix("_total")
    return {
        sample.labels["feature"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
        if sample.name == Metric.FEATURE_OUT_OF_RANGE and sample.labels["model_version"] == MODEL_VERSION
    }


def test_values_far_outside_training_are_scored_counted_and_logged(
    predictor: Predictor, rows: Rows, numeric: set[str]
) -> None:
    [record] = rows(0, 1)
    before = _out_of_range(predictor)
    assert set(before) == numeric  # every numeric feature exported, at 0 until a value is out of range
    status, _ = predictor.post(V1, {"instances": [{**record, "tenure": 1e308}, {**record, "tenure": -1e6}]})
    assert status == 200
    after = _out_of_range(predictor)
    assert after["tenure"] == before["tenure"] + 2
    assert {k: v for k, v in after.items() if k != "tenure"} == {
        k: v for k, v in before.items() if k != "tenure"
    }
    assert "values outside the training range" in predictor.output.read_text()


def test_the_training_data_is_in_range(predictor: Predictor, trained: Trained, rows: Rows) -> None:
    before = _out_of_range(predictor)
    assert before, "no out-of-range counters exported"
    assert predictor.post(V1, {"instances": rows(0, len(trained.probabilities))})[0] == 200
    assert _out_of_range(predictor) == before
