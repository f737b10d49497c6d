"""The booster's trees as one node table, walked by one compiled call per request.

`Booster.inplace_predict` costs ~160 µs for one row of the demo model (400 trees, depth 4),
almost all of it fixed per-call overhead in XGBoost (JSON configs, a proxy DMatrix, the
predictor set-up), not tree traversal. The same walk, compiled by numba (`_walk`), costs a few
µs: one call for all rows and trees, where a numpy walk took ~35 numpy calls (each tree level
a few vectorised steps), which is what a request paid for inside the server, where every call
runs cold (~3 µs each). The walk follows XGBoost's CPU predictor: the feature value is compared
as float32, `value < split_condition` goes left, NaN takes the node's default direction, the
margin is `logit(base_score)` plus the leaf values summed in float32 in tree order, squashed by
the logistic function with the C library's `expf`, as XGBoost calls it.

Only plain numeric splits of a single-target `binary:logistic` gbtree are compiled; anything
else raises `UnsupportedBooster`. Like the rest of the fast path, it is only served after the
parity check against the Pipeline at load (predictor.py).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from xgboost import Booster

from shipyard_serving.kernels import kernel

# XGBoost's sigmoid calls the C library's scalar expf, which is not always correctly rounded;
# numpy's float32 exp differs from it by an ulp on ~1 row in 4. `math.exp` of a float32 in a
# numba kernel compiles to a call of that same expf (tested bit-equal: test_fast_path.py).
_EXP_LIMIT = np.float32(88.7)  # XGBoost's clamp on -margin: expf overflows past ~88.72


class UnsupportedBooster(ValueError):
    """The booster holds something this walk does not reproduce."""


class TreeEnsemble:
    """Every tree's nodes in one table; a leaf points to itself so extra steps stay on it."""

    def __init__(self, booster: Booster, iteration_range: tuple[int, int]):
        learner = json.loads(booster.save_raw("json"))["learner"]
        model = _checked_gbtree(learner)
        trees = model["trees"]
        if iteration_range != (0, 0):
            # iteration_indptr[i] is the first tree of boosting round i (rounds may grow several).
            first, last = (model["iteration_indptr"][i] for i in iteration_range)
            trees = trees[first:last]
        offsets = np.cumsum([0] + [len(t["left_children"]) for t in trees])
        left, right, feature, condition, default_left = [], [], [], [], []
        for tree, offset in zip(trees, offsets[:-1], strict=True):
            if any(tree["split_type"]):
                raise UnsupportedBooster(f"tree {tree['id']} has categorical splits")
            children = np.array(tree["left_children"]), np.array(tree["right_children"])
            leaf = children[0] == -1
            own = np.arange(len(leaf))
            left.append(np.where(leaf, own, children[0]) + offset)
            right.append(np.where(leaf, own, children[1]) + offset)
            feature.append(np.where(leaf, 0, tree["split_indices"]))
            # A leaf's split_condition holds its value (XGBoost's JSON model format).
            condition.append(np.array(tree["split_conditions"], dtype=np.float32))
            default_left.append(np.array(tree["default_left"], dtype=bool) | leaf)
        # One more node, first of the walk and a leaf from the start: the base margin, so that the
        # leaves the walk ends on are the terms of the margin in XGBoost's order, base first.
        base_score = float(learner["learner_model_param"]["base_score"].strip("[]"))
        base = offsets[-1]
        left.append(np.array([base]))
        right.append(np.array([base]))
        feature.append(np.array([0]))
        condition.append(np.array([math.log(base_score / (1.0 - base_score))], dtype=np.float32))
        default_left.append(np.array([True]))
        # One 12-byte row per node, so that a step reads one cache line where four arrays cost four
        # (inside the server the walk runs with cold caches: trees.py's docstring). The split
        # feature is stored as -(feature + 1) where a missing value goes right.
        split = np.concatenate(feature)
        self.nodes = np.stack(
            [
                np.where(np.concatenate(default_left), split, -(split + 1)),
                np.concatenate(left),
                np.concatenate(right),
            ],
            axis=1,
        ).astype(np.int32)
        self.conditions = np.concatenate(condition)
        self.roots = np.concatenate([[base], offsets[:-1]]).astype(np.int64)
        self.depth = max(_depth(t["left_children"], t["right_children"]) for t in trees)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row of the C-ordered (rows x features) float32
        matrix (FastPath.transform's)."""
        return _walk(matrix, self.roots, self.depth, self.nodes, self.conditions)


# Trees walked side by side: one tree's steps depend on each other, 16 trees' do not, so the CPU
# overlaps their reads (32 rows: 124 -> 80 µs in a loop of its own).
LANES = 16


# Compiled once, at import, for these types only, so that no request ever waits for a compilation.
@kernel("float64[::1](float32[:, ::1], int64[::1], int64, int32[:, ::1], float32[::1])")
def _walk(values, roots, depth, nodes, conditions):
    """Each row down every tree, `depth` steps (a leaf points to itself), its leaves summed."""
    probability = np.empty(values.shape[0], dtype=np.float64)
    trees = roots.shape[0]
    at = np.empty(LANES, dtype=np.int64)  # the node each lane's tree is at
    for row in range(values.shape[0]):
        # The running sum of negated leaf values, base first, is -margin (a float sum of negated
        # terms is exactly the negated sum): bit-equal to XGBoost's float32 sum.
        minus_margin = np.float32(0.0)
        for first in range(0, trees, LANES):
            lanes = min(LANES, trees - first)
            at[:lanes] = roots[first : first + lanes]
            for _ in range(depth):
                for lane in range(lanes):
                    node = at[lane]
                    split = nodes[node, 0]
                    value = values[row, split if split >= 0 else -split - 1]
                    # `not value < condition` goes right; NaN compares false both ways and goes its
                    # default way (right where the feature is stored negative).
                    right = split < 0 if np.isnan(value) else value >= conditions[node]
                    at[lane] = nodes[node, 1 + right]
            for lane in range(lanes):  # the leaves in tree order
                minus_margin -= conditions[at[lane]]
        exp = np.float32(math.exp(min(minus_margin, _EXP_LIMIT)))
        probability[row] = np.float32(1.0) / (exp + np.float32(1.0))
    return probability


def _checked_gbtree(learner: dict[str, Any]) -> dict[str, Any]:
    booster, objective = learner["gradient_booster"]["name"], learner["objective"]["name"]
    parameters = learner["learner_model_param"]
    if booster != "gbtree" or objective != "binary:logistic" or parameters.get("num_target", "1") != "1":
        raise UnsupportedBooster(
            f"booster {booster!r} with objective {objective!r} and {parameters.get('num_target')} targets, "
            "expected a single-target binary:logistic gbtree"
        )
    return learner["gradient_booster"]["model"]


def _depth(left: list[int], right: list[int]) -> int:
    """Edges on the longest root-to-leaf path (nodes are stored parents first)."""
    depth = [0] * len(left)
    for node, (a, b) in enumerate(zip(left, right, strict=True)):
        if a != -1:
            depth[a] = depth[b] = depth[node] + 1
    return max(depth)
