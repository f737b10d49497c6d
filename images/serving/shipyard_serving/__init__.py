"""Shipyard predictor: a kserve model server runtime for Shipyard models (see predictor.py)."""
