"""Errors of the rollout: a provider that cannot be asked, and one that has nothing to say yet."""

from __future__ import annotations


class ProviderError(RuntimeError):
    """The metrics provider could not be queried (unreachable, bad answer): an error verdict."""


class NoDataError(ProviderError):
    """The provider answered but has no series for the target yet: an inconclusive verdict."""


class BackendError(RuntimeError):
    """The traffic backend could not do what was asked (deploy, move traffic, verify the split)."""
