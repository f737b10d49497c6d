"""The Great Expectations suite of a pipeline: the spec's expectations plus schema checks it implies.

Schema checks come from the column roles: every named column exists; numeric features have
a numeric dtype (a number arriving as text is schema drift); the target is never null and
its positive rate stays in bounds; every feature respects `max_null_fraction`. The event
time needs no check here: ingest already parsed it into UTC timestamps. The spec's own
expectations (not_null, ranges, allowed values, unique, row count) are added as written.
"""

from __future__ import annotations

import great_expectations as gx
from great_expectations.expectations import Expectation

from shipyard_pipeline.dataset import FeatureSet
from shipyard_spec.model import PipelineSpec

TARGET_POSITIVE = "__shipyard_target_positive__"  # 0/1 column added before validation
INTEGER_TYPES = [f"{kind}{bits}" for kind in ("int", "uint", "Int", "UInt") for bits in (8, 16, 32, 64)]
NUMERIC_TYPES = [*INTEGER_TYPES, "float32", "float64", "Float32", "Float64", "bool", "boolean"]
# Categories may be coded as integers; a number arriving as text is what the numeric check catches.
CATEGORICAL_TYPES = ["object", "str", "string", "category", "bool", "boolean", *INTEGER_TYPES]


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
