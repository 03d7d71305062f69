"""The recommendation evaluation harness: synthetic populations, splits, baselines, metrics."""
