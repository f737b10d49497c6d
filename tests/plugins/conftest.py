"""Airflow-side plugin tests: `plugins/` on sys.path, as Airflow puts its plugins_folder there."""

from __future__ import annotations

import sys

from support.servers import REPO

sys.path.insert(0, str(REPO / "plugins"))
