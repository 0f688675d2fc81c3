"""Evaluation, with no database: the canonical recipe (``recipe``), digests of its output
(``digests``), task metrics (``metrics``) and forgetting measures (``forgetting``), the last two
pure functions."""
