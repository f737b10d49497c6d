"""Shipyard's pipeline spec schema, shared by the Airflow side and the pipeline image."""

from shipyard_spec.loader import LoadedSpecs, SpecError, load_spec, load_specs, loads_spec, parse_spec
from shipyard_spec.model import PipelineSpec

__all__ = ["LoadedSpecs", "PipelineSpec", "SpecError", "load_spec", "load_specs", "loads_spec", "parse_spec"]
