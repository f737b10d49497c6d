"""Test helpers shared by every runtime's test run (standard library only)."""
