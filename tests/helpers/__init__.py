"""Helpers shared by test modules (test modules import no helpers from each other)."""
