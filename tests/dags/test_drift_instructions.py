"""The README's drift instructions after `make demo`: the traffic script reaches MLflow only through
MLFLOW_TRACKING_URI. Unset, it says how to start MLflow on the demo's state and creates nothing in
the working directory (it used to open a fresh local store there and report "no champion")."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.servers import REPO, free_port, mlflow_server, venv_python

SCRIPT = REPO / "scripts" / "send_drifted_traffic.py"
SPEC = REPO / "dags" / "pipelines" / "telco_churn.yaml"


@pytest.mark.parametrize(
    ("tracking_uri", "cause"),
    [(None, "MLFLOW_TRACKING_URI is not set"), ("http://127.0.0.1:9", "unreachable after 1 attempts")],
    ids=["unset", "nothing listening"],
)
def test_without_a_reachable_mlflow_the_script_says_how_to_start_it(
    tmp_path: Path, tracking_uri: str | None, cause: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHIPYARD_"))}
    env |= {"SHIPYARD_HOME": str(tmp_path / "home"), "SHIPYARD_MLFLOW_CONNECT_ATTEMPTS": "1"}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    run = subprocess.run(
        [venv_python("pipeline"), str(SCRIPT), "--spec", str(SPEC)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert cause in last
    assert "make up" in last
    assert "scripts/airflow_env.py" in last
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no mlflow.db, no mlruns/


def test_the_readme_commands_after_make_demo_name_the_missing_mlflow(tmp_path: Path) -> None:
    """The README's drift commands, literally, after `make demo` stopped MLflow: the environment of
    `scripts/airflow_env.py` points at the MLflow `make up` would start, nothing answers there, and the
    script says to run `make up` (nothing is written in the working directory)."""
    commands = (
        f'eval "$({venv_python("airflow")} {REPO / "scripts" / "airflow_env.py"})" && '
        f"{venv_python('pipeline')} {SCRIPT} --spec {SPEC}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHIPYARD_"))}
    env |= {"SHIPYARD_MLFLOW_PORT": str(free_port()), "SHIPYARD_MLFLOW_CONNECT_ATTEMPTS": "1"}
    run = subprocess.run(
        ["bash", "-c", commands],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert f"127.0.0.1:{env['SHIPYARD_MLFLOW_PORT']}" in last
    assert "make up" in last
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_mlflow_without_a_champion_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    """MLflow up but no training run yet: the script says so, with the server it asked, and writes no logs."""
    home = tmp_path / "home"
    with mlflow_server(tmp_path / "mlflow") as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHIPYARD_"))}
        env |= {"MLFLOW_TRACKING_URI": url, "SHIPYARD_HOME": str(home)}
        run = subprocess.run(
            [venv_python("pipeline"), str(SCRIPT), "--spec", str(SPEC)],
            cwd=home.parent, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1] == (
        f"no champion for 'telco_churn' in MLflow at {url} yet: run the training DAG first"
    )
    assert not home.exists()  # no prediction log directory, no local MLflow store
