"""Scoring predictions against ground truth: pixel and object figures, reports, summaries."""
