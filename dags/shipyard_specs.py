"""Pipeline spec check (airflow): this file defines no DAG. Every spec in dags/pipelines/ that is
invalid, or shares its `name` with another, is raised here, so the DAG processor shows it as this
file's import error naming the spec file and the field; the other DAG files skip such specs, so
one bad spec hides no other pipeline's training, drift or rollback DAG."""

from __future__ import annotations

from pathlib import Path

from shipyard.dag_factory import load_pipelines

load_pipelines(Path(__file__).parent / "pipelines").raise_errors()
