"""Shipyard's pipeline spec schema, shared by the Airflow side and the pipeline image."""

from shipyard_spec.loader import SpecError, load_spec, parse_spec
from shipyard_spec.model import PipelineSpec

__all__ = ["PipelineSpec", "SpecError", "load_spec", "parse_spec"]
