"""kserve's gRPC V2 endpoint on the predictor (`--enable_grpc true`): same answers as REST, 4xx-style
errors for bad input, and none of kserve's per-call INFO lines in the log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import MODEL_NAME, Predictor, Trained, predictor_process
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from support.servers import free_port

from shipyard_serving.predictor import PARITY_TOLERANCE

ROWS = 200


@pytest.fixture(scope="module")
def grpc_predictor(
    trained: Trained, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Predictor, str]]:
    port = free_port()
    workdir = tmp_path_factory.mktemp("grpc")
    with predictor_process(
        trained.model_dir, workdir, "--enable_grpc", "true", "--grpc_port", str(port)
    ) as p:
        yield p, f"127.0.0.1:{port}"


def infer(target: str, columns: dict[str, list], rows: int) -> pb.ModelInferResponse:
    inputs = []
    for name, values in columns.items():
        column = values[:rows]
        if isinstance(column[0], str):
            contents = pb.InferTensorContents(bytes_contents=[v.encode() for v in column])
            datatype = "BYTES"
        else:
            contents = pb.InferTensorContents(fp64_contents=column)
            datatype = "FP64"
        inputs.append(
            pb.ModelInferRequest.InferInputTensor(
                name=name, datatype=datatype, shape=[rows], contents=contents
            )
        )
    with grpc.insecure_channel(target) as channel:
        return GRPCInferenceServiceStub(channel).ModelInfer(
            pb.ModelInferRequest(model_name=MODEL_NAME, id="g-1", inputs=inputs), timeout=30
        )


def complete_rows(trained: Trained) -> tuple[dict[str, list], list[int]]:
    """The first ROWS rows without a missing value (a gRPC tensor has no null)."""
    keep = [
        i
        for i in range(len(trained.probabilities))
        if all(v[i] is not None for v in trained.columns.values())
    ]
    return {name: [values[i] for i in keep[:ROWS]] for name, values in trained.columns.items()}, keep[:ROWS]


def test_grpc_scores_as_the_pipeline_does(grpc_predictor: tuple[Predictor, str], trained: Trained) -> None:
    _, target = grpc_predictor
    columns, kept = complete_rows(trained)
    response = infer(target, columns, ROWS)
    assert response.id == "g-1"
    [output] = response.outputs
    assert output.name == "probability"
    assert list(output.shape) == [ROWS]
    expected = np.array([trained.probabilities[i] for i in kept])
    assert np.max(np.abs(np.array(output.contents.fp64_contents) - expected)) <= PARITY_TOLERANCE


def test_grpc_bad_input_is_invalid_argument_naming_the_field(
    grpc_predictor: tuple[Predictor, str], trained: Trained
) -> None:
    _, target = grpc_predictor
    columns, _ = complete_rows(trained)
    del columns["tenure"]
    with pytest.raises(grpc.RpcError) as raised:
        infer(target, columns, 1)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tenure" in raised.value.details()


def test_grpc_calls_leave_no_per_call_log_line(
    grpc_predictor: tuple[Predictor, str], trained: Trained
) -> None:
    predictor, target = grpc_predictor
    columns, _ = complete_rows(trained)
    for _ in range(3):
        infer(target, columns, 1)
    log = Path(predictor.output).read_text()
    assert "Registering model" in log  # kserve's own INFO lines are kept
    assert "grpc method" not in log
