"""Drift monitoring: the champion's prediction logs against the reference profile it was trained with.

Modules, one job each: `statistics` (PSI, KS, chi-square; pure), `profile` (the reference
profile the train step logs), `prediction_logs` (read one window), `labels` (live AUC),
`compare` (per-feature drift and the verdict), `report` (table, HTML), `push` (PSI per feature
to the Pushgateway), `step` (MLflow and storage), `cli` (the `drift` step's arguments).
"""
