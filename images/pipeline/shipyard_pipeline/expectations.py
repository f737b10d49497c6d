"""The Great Expectations suite of a pipeline: the spec's expectations plus schema checks it implies.

Schema checks come from the column roles: every named column exists; numeric features have
a numeric dtype (a number arriving as text is schema drift); the target is never null and
its positive rate stays in bounds; every feature respects `max_null_fraction`. The event
time needs no check here: ingest already parsed it into UTC timestamps. The spec's own
expectations (not_null, ranges, allowed values, unique, row count) are added as written.

One suite for both engines (`engines.Engine.validation_batch`): the type checks list each kind by
its pandas dtype names and by its Spark type names (Great Expectations matches a pandas column
against the former and a Spark column against the latter, ignoring the other's names). Every
expectation here runs on Great Expectations' Spark datasource as on its pandas one.
"""

from __future__ import annotations

import great_expectations as gx
import pandas as pd
from great_expectations.expectations import Expectation

from shipyard_pipeline import dataset
from shipyard_pipeline.dataset import FeatureSet
from shipyard_spec.model import PipelineSpec

TARGET_POSITIVE = "__shipyard_target_positive__"  # 0/1 column added before validation
INTEGER_TYPES = [f"{kind}{bits}" for kind in ("int", "uint", "Int", "UInt") for bits in (8, 16, 32, 64)]
# pyspark.sql.types classes: NumericType and IntegralType are the bases of Spark's number types.
NUMERIC_TYPES = [
    *INTEGER_TYPES, "float32", "float64", "Float32", "Float64", "bool", "boolean",
    "NumericType", "BooleanType",
]  # fmt: skip
# Categories may be coded as integers; a number arriving as text is what the numeric check catches.
CATEGORICAL_TYPES = [
    "object", "str", "string", "category", "bool", "boolean", *INTEGER_TYPES,
    "StringType", "BooleanType", "IntegralType",
]  # fmt: skip


def suite_features(spec: PipelineSpec, frame: pd.DataFrame) -> FeatureSet:
    """The features the suite checks: the spec's, or inferred from `frame`'s dtypes (a snapshot or
    its empty frame: only the dtypes are read)."""
    if spec.features.infer:
        return dataset.resolve_features(spec, frame)
    return FeatureSet(list(spec.features.numeric), list(spec.features.categorical))


def with_target_positive(spec: PipelineSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the 0/1 TARGET_POSITIVE column the target-rate expectation reads (without a
    target column: `frame`)."""
    if spec.columns.target not in frame.columns:
        return frame
    return frame.assign(**{TARGET_POSITIVE: dataset.target_vector(spec, frame[spec.columns.target])})


def build_suite(spec: PipelineSpec, features: FeatureSet) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name=f"{spec.name}-snapshot")
    for expectation in expectations(spec, features):
        suite.add_expectation(expectation)
    return suite


def expectations(spec: PipelineSpec, features: FeatureSet) -> list[Expectation]:
    rules = spec.expectations
    columns = spec.columns
    checks: list[Expectation] = [
        gx.expectations.ExpectTableRowCountToBeBetween(
            min_value=rules.row_count.min, max_value=rules.row_count.max
        )
    ]
    named = [c for c in (columns.id, columns.target, columns.event_time) if c] + features.columns
    checks += [gx.expectations.ExpectColumnToExist(column=c) for c in named]
    checks += [
        gx.expectations.ExpectColumnValuesToBeInTypeList(column=c, type_list=NUMERIC_TYPES)
        for c in features.numeric
    ]
    checks += [
        gx.expectations.ExpectColumnValuesToBeInTypeList(column=c, type_list=CATEGORICAL_TYPES)
        for c in features.categorical
    ]
    not_null = list(dict.fromkeys([columns.target, *rules.not_null]))
    checks += [gx.expectations.ExpectColumnValuesToNotBeNull(column=c) for c in not_null]
    if rules.max_null_fraction < 1:
        checks += [
            gx.expectations.ExpectColumnValuesToNotBeNull(column=c, mostly=1 - rules.max_null_fraction)
            for c in features.columns
            if c not in not_null
        ]
    checks += [
        gx.expectations.ExpectColumnValuesToBeBetween(column=c, min_value=b.min, max_value=b.max)
        for c, b in rules.ranges.items()
    ]
    checks += [
        gx.expectations.ExpectColumnValuesToBeInSet(column=c, value_set=values)
        for c, values in rules.allowed_values.items()
    ]
    checks += [gx.expectations.ExpectColumnValuesToBeUnique(column=c) for c in rules.unique]
    if rules.target_rate is not None:
        checks.append(
            gx.expectations.ExpectColumnMeanToBeBetween(
                column=TARGET_POSITIVE, min_value=rules.target_rate.min, max_value=rules.target_rate.max
            )
        )
    return checks
