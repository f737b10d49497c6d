"""The booster's trees as flat numpy arrays, walked for all trees and rows at once.

`Booster.inplace_predict` costs ~160 µs for one row of the demo model (400 trees, depth 4),
almost all of it fixed per-call overhead in XGBoost (JSON configs, a proxy DMatrix, the
predictor set-up), not tree traversal. Walking the same trees in numpy takes a few vectorised
steps per tree level. The walk follows XGBoost's CPU predictor: the feature value is compared
as float32, `value < split_condition` goes left, NaN takes the node's default direction, and
the margin is `logit(base_score)` plus the leaf values, squashed by the logistic function.

Only plain numeric splits of a single-target `binary:logistic` gbtree are compiled; anything
else raises `UnsupportedBooster`. Like the rest of the fast path, it is only served after the
parity check against the Pipeline at load (predictor.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
from typing import Any

import numpy as np
from xgboost import Booster

# XGBoost's sigmoid calls the C library's scalar expf, which is not always correctly rounded;
# numpy's float32 exp differs from it by an ulp on ~1 row in 4, float64 exp on ~1 in 7,000.
_libm = ctypes.CDLL(ctypes.util.find_library("m"))
_libm.expf.restype = ctypes.c_float
_libm.expf.argtypes = [ctypes.c_float]
_expf = np.frompyfunc(_libm.expf, 1, 1)
_EXP_LIMIT = np.float32(88.7)  # XGBoost's clamp on -margin: expf overflows past ~88.72


class UnsupportedBooster(ValueError):
    """The booster holds something this walk does not reproduce."""


class TreeEnsemble:
    """Every tree's nodes in shared arrays; a leaf points to itself so extra steps stay on it."""

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
        # A node is walked as its "slot" 2 * node: slot + 0 is the way left, slot + 1 the way right,
        # so one step is `slot = children[slot + went_right]` with no multiplication per level.
        # Per-node arrays are repeated so that they read the same at either slot of a node.
        self.children = 2 * np.stack([np.concatenate(left), np.concatenate(right)], axis=1).ravel()
        self.feature = np.repeat(np.concatenate(feature), 2)
        self.condition = np.repeat(np.concatenate(condition), 2)
        # Leaf values negated (exactly): their running sum is then -margin, the sigmoid's argument.
        self.minus_value = -self.condition
        self.default_right = np.repeat(~np.concatenate(default_left), 2)
        self.roots = 2 * np.concatenate([[base], offsets[:-1]])[None, :]
        self.depth = max(_depth(t["left_children"], t["right_children"]) for t in trees)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row of the (rows x features) matrix."""
        rows = matrix.shape[0]
        values = matrix.astype(np.float32).ravel()
        # Missing values need the default direction, two more steps per level: only paid when present.
        missing = bool(np.isnan(values).any())
        row_start = (np.arange(rows) * matrix.shape[1])[:, None] if rows > 1 else None
        slot = np.repeat(self.roots, rows, axis=0)
        for _ in range(self.depth):
            index = self.feature.take(slot)
            if row_start is not None:
                index += row_start
            value = values.take(index)
            # `not value < condition` goes right; NaN compares false both ways and goes its default way.
            went_right = value >= self.condition.take(slot)
            if missing:
                went_right |= np.isnan(value) & self.default_right.take(slot)
            slot = self.children.take(slot + went_right)
        # float32 and summed tree by tree from the base margin, as XGBoost does: bit-equal output
        # (a float sum of negated terms is exactly the negated sum).
        minus_margin = np.cumsum(self.minus_value.take(slot), axis=1, dtype=np.float32)[:, -1]
        exp = _expf(np.minimum(minus_margin, _EXP_LIMIT)).astype(np.float32)
        return (np.float32(1.0) / (exp + np.float32(1.0))).astype(np.float64)


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
