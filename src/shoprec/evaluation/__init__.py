"""Offline evaluation: splits into tasks, vectorised metrics, the evaluator."""

from .evaluator import EvalFailure, EvalResult, evaluate, evaluate_strategy
from .splits import (EvalTask, basket_hold_one_out, from_train_test, leave_one_out, session_next_item,
                     temporal_split)

__all__ = ["EvalFailure", "EvalResult", "EvalTask", "basket_hold_one_out", "evaluate", "evaluate_strategy",
           "from_train_test", "leave_one_out", "session_next_item", "temporal_split"]
