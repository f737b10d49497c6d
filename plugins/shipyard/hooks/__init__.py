"""Airflow hooks of Shipyard: each owns one connection and the retries of the calls through it."""
