"""Evaluation: challenge submissions, metrics and honest comparisons."""
