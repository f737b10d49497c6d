"""Fitting the one model shape: early stopping on validation and an optional bounded Optuna search.

The artifact stays a plain `modeling.build_pipeline` Pipeline: early stopping runs on a
probe fit to find the best number of trees; when it stopped early, the Pipeline is fitted
again with exactly that many, so what is served has no early-stopping state and no extra
trees. When it never stopped (the best tree is the last), the probe's trees are exactly
those a refit would grow (same data, params and seed), so the probe's Pipeline is kept,
its early-stopping state removed, and nothing is fitted twice. The search and the early
stopping only ever look at the validation split; the test split is left for evaluate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from shipyard_pipeline.dataset import FeatureSet
from shipyard_pipeline.modeling import DEFAULT_XGBOOST_PARAMS, build_pipeline
from shipyard_spec.model import ModelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fit:
    pipeline: Pipeline
    params: dict[str, Any]
    trees: int | None  # chosen by early stopping (None without it)
    validation_roc_auc: float
    tuning: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Data:
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_validation: pd.DataFrame
    y_validation: np.ndarray


def fit_model(features: FeatureSet, config: ModelConfig, data: Data, tune: bool, seed: int) -> Fit:
    """Tune (when asked) and fit; the result's params are exactly those of the fitted model."""
    params: dict[str, Any] = {"random_state": seed, **config.params}
    tuning: dict[str, Any] = {"enabled": False}
    if tune:
        params, tuning = search(features, config, data, params, seed)
    trees, pipeline = None, None
    if config.early_stopping_rounds is not None:
        probed = probe(features, params, config.early_stopping_rounds, data)
        trees = probed.trees
        if probed.stopped_early:
            params = {**params, "n_estimators": trees}
        else:
            pipeline = without_early_stopping_state(probed.pipeline)
    if pipeline is None:
        pipeline = build_pipeline(features.numeric, features.categorical, params)
        pipeline.fit(data.x_train, data.y_train)
    auc = float(roc_auc_score(data.y_validation, pipeline.predict_proba(data.x_validation)[:, 1]))
    log.info("fitted %s trees (params %s): validation ROC AUC %.4f", params.get("n_estimators"), params, auc)
    return Fit(pipeline, params, trees, auc, tuning)


@dataclass(frozen=True)
class Probe:
    pipeline: Pipeline  # fitted, with early-stopping state
    trees: int  # at the best validation log loss
    stopped_early: bool  # the best tree is not the last one grown: a refit must drop the rest
    validation_roc_auc: float  # at the best number of trees


def probe(features: FeatureSet, params: Mapping[str, Any], rounds: int, data: Data) -> Probe:
    """Fit with early stopping on validation."""
    pipeline = build_pipeline(features.numeric, features.categorical, params)
    preprocess = pipeline.named_steps["preprocess"].fit(data.x_train)
    model = pipeline.named_steps["model"].set_params(early_stopping_rounds=rounds)
    validation = preprocess.transform(data.x_validation)
    model.fit(
        preprocess.transform(data.x_train),
        data.y_train,
        eval_set=[(validation, data.y_validation)],
        verbose=False,
    )
    # predict_proba stops at best_iteration after early stopping.
    auc = float(roc_auc_score(data.y_validation, model.predict_proba(validation)[:, 1]))
    trees = int(model.best_iteration) + 1
    return Probe(pipeline, trees, trees < model.get_booster().num_boosted_rounds(), auc)


def without_early_stopping_state(pipeline: Pipeline) -> Pipeline:
    """The probe's Pipeline as a plain fit leaves it: no early-stopping rounds, best iteration, history."""
    model = pipeline.named_steps["model"].set_params(early_stopping_rounds=None)
    booster = model.get_booster()
    booster.set_attr(best_iteration=None, best_score=None)
    del model.evals_result_
    return pipeline


def search(
    features: FeatureSet, config: ModelConfig, data: Data, params: dict[str, Any], seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A bounded TPE search on validation ROC AUC; the spec's params are the first trial, so
    the result is never worse on validation than not tuning."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    max_trees = int(params.get("n_estimators", DEFAULT_XGBOOST_PARAMS["n_estimators"]))

    def objective(trial: optuna.Trial) -> float:
        candidate = {
            **params,
            "max_depth": trial.suggest_int("max_depth", 2, 6),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20, log=True),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10, log=True),
        }
        probed = probe(features, candidate, config.early_stopping_rounds or 30, data)
        trial.set_user_attr("n_estimators", probed.trees)
        return probed.validation_roc_auc

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    defaults = {**DEFAULT_XGBOOST_PARAMS, "min_child_weight": 1.0, "reg_lambda": 1.0, **params}
    study.enqueue_trial(
        {
            name: defaults[name]
            for name in (
                "max_depth",
                "learning_rate",
                "subsample",
                "colsample_bytree",
                "min_child_weight",
                "reg_lambda",
            )
        }
    )
    study.optimize(objective, n_trials=config.tuning.max_trials, timeout=config.tuning.timeout_seconds)
    best = study.best_trial
    log.info(
        "tuning: %d trial(s), best validation ROC AUC %.4f (untuned %.4f) with %s",
        len(study.trials),
        best.value,
        study.trials[0].value,
        best.params,
    )
    summary = {
        "enabled": True,
        "trials": len(study.trials),
        "best_validation_roc_auc": best.value,
        "untuned_validation_roc_auc": study.trials[0].value,
        "best_params": best.params,
    }
    return {**params, **best.params, "n_estimators": max_trees}, summary
