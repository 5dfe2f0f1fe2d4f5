"""Evaluation helpers (scores, tables, comparisons)."""
