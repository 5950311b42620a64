"""Evaluation: packed binary codes, Hamming search indexes and retrieval metrics."""
