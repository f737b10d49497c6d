"""The numpy fast path vs the training Pipeline: every Telco row, missing values, unseen categories."""

from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import Trained
from kserve.errors import InvalidInput

from shipyard_serving.fast_path import FastPath, UnsupportedPipeline
from shipyard_serving.model_dir import read_model_dir
from shipyard_serving.predictor import PARITY_TOLERANCE, Settings, ShipyardModel


@pytest.fixture(scope="module")
def loaded(trained: Trained) -> ShipyardModel:
    model = ShipyardModel("telco", Settings(str(trained.model_dir), max_batch_size=10_000))
    model.load()
    return model


def test_fast_path_matches_the_training_pipeline_on_every_row(
    loaded: ShipyardModel, trained: Trained
) -> None:
    batch = loaded.decoder.from_v1({"inputs": trained.columns})
    reference = np.array(trained.probabilities)
    assert loaded.path == "fast"
    assert batch.rows == len(reference) > 7043  # the Telco rows plus missing-value and unseen-category rows
    fast = loaded.fast.predict(batch.numeric, batch.categorical)
    assert np.max(np.abs(fast - reference)) <= PARITY_TOLERANCE
    assert np.max(np.abs(loaded.exact(batch) - reference)) <= PARITY_TOLERANCE


def test_model_is_ready_only_after_load(trained: Trained) -> None:
    model = ShipyardModel("telco", Settings(str(trained.model_dir)))
    assert model.ready is False
    assert model.load() is True
    assert model.ready is True


def _copy_with_pipeline(trained: Trained, tmp_path: Path, change) -> Path:
    target = tmp_path / "model"
    shutil.copytree(trained.model_dir, target)
    pipeline = read_model_dir(target).pipeline
    change(pipeline)
    (target / "model.pkl").write_bytes(pickle.dumps(pipeline))
    return target


def _mean_imputer(pipeline) -> None:
    pipeline.named_steps["preprocess"].named_transformers_["numeric"].named_steps["impute"].strategy = "mean"


def test_unknown_pipeline_shape_falls_back_to_the_exact_path(
    trained: Trained, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model_dir = _copy_with_pipeline(trained, tmp_path, _mean_imputer)
    directory = read_model_dir(model_dir)
    with pytest.raises(UnsupportedPipeline, match="numeric imputer"):
        FastPath(directory.pipeline, directory.numeric, directory.categorical)
    model = ShipyardModel("telco", Settings(str(model_dir)))
    with caplog.at_level(logging.WARNING, logger="shipyard_serving"):
        assert model.load()
    assert model.path == "exact"
    assert "fast path refused" in caplog.text


def test_parity_failure_on_the_input_example_falls_back_to_the_exact_path(
    trained: Trained, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = FastPath.transform

    def off_by_a_little(self: FastPath, numeric: np.ndarray, categorical: dict) -> np.ndarray:
        return original(self, numeric, categorical) + 0.05  # a fast path that drifted from training

    monkeypatch.setattr(FastPath, "transform", off_by_a_little)
    model = ShipyardModel("telco", Settings(str(trained.model_dir)))
    with caplog.at_level(logging.WARNING, logger="shipyard_serving"):
        assert model.load()
    assert model.path == "exact"
    assert "exceeds 1e-06" in caplog.text


@pytest.mark.parametrize("rows", [1, 2, 300])
@pytest.mark.parametrize("missing", [False, True], ids=["complete", "with-nan"])
def test_tree_walk_is_bit_equal_to_xgboost(
    loaded: ShipyardModel, trained: Trained, rows: int, missing: bool
) -> None:
    """The compiled walk is XGBoost's answer exactly, bit for bit (the float32 sum of the leaves, the
    default direction of a NaN, the C library's expf in the sigmoid), for one row and many. The
    Pipeline's matrices never hold NaN (the imputer fills them), so NaN is put in here."""
    batch = loaded.decoder.from_v1({"inputs": trained.columns})
    matrix = loaded.fast.transform(batch.numeric[:rows], {k: v[:rows] for k, v in batch.categorical.items()})
    if missing:
        chosen = np.random.default_rng(7).random(matrix.shape) < 0.2
        matrix[chosen] = np.nan
        assert np.isnan(matrix).any()
    booster = loaded.pipeline.named_steps["model"].get_booster()
    expected = booster.inplace_predict(matrix, missing=np.nan).astype(np.float64)
    np.testing.assert_array_equal(loaded.fast.trees.predict(matrix), expected)


def test_one_row_requests_score_as_the_pipeline_on_the_example_and_hostile_rows(
    loaded: ShipyardModel, trained: Trained
) -> None:
    """A one-row request takes every short cut of the request path (decoding straight to arrays,
    the compiled transform and walk): each answer must still be the Pipeline's. Rows: the
    input example, a spread of Telco rows and every hostile row (each feature missing in turn,
    unseen categories, everything missing), each sent as its own V1 request."""
    reference = trained.probabilities
    telco = 7043
    picks = [*range(0, telco, 97), *range(telco, len(reference))]
    records = [{name: values[i] for name, values in trained.columns.items()} for i in picks]
    columns = read_model_dir(trained.model_dir).input_example
    example = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    for record in [*example, *records]:
        batch = loaded.preprocess({"instances": [record]})
        [answer] = loaded.predict(batch)["predictions"]
        assert abs(answer - loaded.exact(batch)[0]) <= PARITY_TOLERANCE, record
    answers = [loaded.predict(loaded.preprocess({"instances": [r]}))["predictions"][0] for r in records]
    assert np.max(np.abs(np.array(answers) - np.array([reference[i] for i in picks]))) <= PARITY_TOLERANCE


def test_with_several_bad_values_the_first_in_signature_order_is_named(
    loaded: ShipyardModel, trained: Trained
) -> None:
    """Numbers are decoded into one array at once: the error still names the first bad feature of
    the signature (then the first bad row), whatever order the record's keys come in."""
    record = {name: values[0] for name, values in trained.columns.items()}
    numeric = loaded.decoder.numeric
    record[numeric[2]] = "twelve"
    record[numeric[0]] = "nan"
    second_row = dict(record, **{numeric[0]: 1.0})
    reversed_keys = dict(reversed(list(record.items())))
    for body in ({"instances": [reversed_keys, second_row]}, {"instances": [second_row, record]}):
        with pytest.raises(InvalidInput) as raised:
            loaded.decoder.decode(body)
        first_bad_row = 0 if body["instances"][0] is reversed_keys else 1
        assert raised.value.reason.startswith(f"feature {numeric[0]!r} row {first_bad_row}:")


def test_the_common_request_decodes_as_the_checked_path_decodes_it(
    loaded: ShipyardModel, trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records with exactly the signature's features and plain values take a short cut
    (`RequestDecoder._valid_records`): each such body must decode to the batch the checked path
    builds, and every body with anything else in it must be left to the checked path, which
    converts or names it."""
    decoder = loaded.decoder
    records = [
        {name: values[i] for name, values in trained.columns.items()}
        for i in range(len(trained.probabilities))
    ]
    assert any(None in record.values() for record in records)  # missing numbers and categories among them
    number, category = decoder.numeric[0], decoder.categorical[0]
    common = [
        *({"instances": [record]} for record in records[::50]),
        *({"instances": [record]} for record in records if None in record.values()),
        {"instances": records},  # every row at once
        {"instances": [{**records[0], number: 3}]},  # an integer
    ]
    hostile = [
        {**records[0], number: float("nan")},
        {**records[0], number: float("inf")},
        {**records[0], number: True},
        {**records[0], number: "12"},  # a JSON number in quotes: the checked path converts it
        {**records[0], category: 5},
        {**records[0], category: b"Yes"},
        {name: value for name, value in records[0].items() if name != category},
        {**records[0], "extra": 1},
    ]
    for body in common:
        assert decoder._valid_records(body) is not None, body
    for body in [
        *({"instances": [record]} for record in hostile),
        {"instances": records[:1], "ids": [7]},
        {"instances": []},
        {"instances": [records[0]] * (decoder.max_batch_size + 1)},
        {"instances": [records[0], "not a record"]},
        {"inputs": {name: [value] for name, value in records[0].items()}},
    ]:
        assert decoder._valid_records(body) is None, body
    short_cut = [decoder.decode(body) for body in common]
    monkeypatch.setattr(type(decoder), "_valid_records", lambda self, body: None)
    for body, batch in zip(common, short_cut, strict=True):
        checked = decoder.decode(body)
        np.testing.assert_array_equal(batch.numeric, checked.numeric)
        assert (batch.numeric_names, batch.categorical, batch.ids) == (
            checked.numeric_names,
            checked.categorical,
            checked.ids,
        )
