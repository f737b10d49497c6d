"""BENCHMARK ATTRIBUTION ONLY: Shipyard's predictor with part of its per-request work taken out.

    partial_predictor.py --without scoring|range_check  <every shipyard-predictor argument>

`run.py` serves these next to the ceilings and the whole predictor, under the same load, so that
the differences of server CPU time per request between them say what each part of the work
costs inside a loaded server, where every part runs with colder caches than in a loop of its
own (run.py's in-process figures measure the same parts both ways). Without `scoring`, a
request is decoded and validated, then answered 0.5 (no scoring, no range check); without
`range_check`, it is scored but its values are not checked against the training range.
Not for production.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from shipyard_serving import __main__ as predictor_main
from shipyard_serving import predictor
from shipyard_serving.requests import Batch


class WithoutRangeCheck(predictor.ShipyardModel):
    def load(self) -> bool:
        ready = super().load()
        self.out_of_range = None
        return ready


class WithoutScoring(WithoutRangeCheck):
    def score(self, batch: Batch) -> np.ndarray:
        return np.full(batch.rows, 0.5)


PARTS = {"scoring": WithoutScoring, "range_check": WithoutRangeCheck}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--without", choices=sorted(PARTS), required=True)
    args, rest = parser.parse_known_args()
    predictor.ShipyardModel = PARTS[args.without]  # what shipyard_serving's main() imports and builds
    predictor_main.main(rest)


if __name__ == "__main__":
    sys.exit(main())
