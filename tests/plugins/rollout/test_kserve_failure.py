"""A KServe model status that reports a terminal failure ends the canary's wait at once, with the
cause: the status fields as KServe writes them (kserve 0.21 SDK: V1beta1ModelStatus)."""

from __future__ import annotations

import pytest

from shipyard.rollout.backends.kserve import terminal_failure

FAILED = {
    "transitionStatus": "BlockedByFailedLoad",
    "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
    "lastFailureInfo": {
        "reason": "ModelLoadFailed",
        "exitCode": 1,
        "message": "shipyard_serving.model_dir.ModelDirError: cannot unpickle /mnt/models/model.pkl",
    },
}


@pytest.mark.parametrize(
    ("model_status", "expected"),
    [
        (
            FAILED,
            "BlockedByFailedLoad: ModelLoadFailed (exit code 1): shipyard_serving.model_dir.ModelDirError",
        ),
        (
            {"transitionStatus": "InvalidSpec", "lastFailureInfo": {"reason": "NoSupportingRuntime"}},
            "InvalidSpec",
        ),
        ({"transitionStatus": "InProgress", "states": {"targetModelState": "FailedToLoad"}}, "FailedToLoad"),
        ({"transitionStatus": "InProgress", "states": {"targetModelState": "Loading"}}, None),
        ({"transitionStatus": "UpToDate", "states": {"activeModelState": "Loaded"}}, None),
        (None, None),
    ],
)
def test_terminal_failures_and_their_cause(model_status, expected):
    isvc = {"status": {"modelStatus": model_status}} if model_status is not None else {"status": {}}
    failure = terminal_failure(isvc)
    if expected is None:
        assert failure is None
    else:
        assert failure is not None
        assert failure.startswith(expected)
