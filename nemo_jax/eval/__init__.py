"""Evaluation: NeMo's rotation error, accuracies and the results JSON / table."""

from nemo_jax.eval.metrics import (
    ACC_THRESHOLDS,
    evaluate_records,
    format_table,
    level_name,
    normalize_record,
    records_from_search,
    rotation_error,
    rotation_matrix,
    summarize,
)

__all__ = [
    "ACC_THRESHOLDS",
    "evaluate_records",
    "format_table",
    "level_name",
    "normalize_record",
    "records_from_search",
    "rotation_error",
    "rotation_matrix",
    "summarize",
]
