"""Former name of :mod:`skinfluence.retraining` (kept as an alias)."""

from .retraining import (  # noqa: F401
    Agreement,
    LeaveOneOutResult,
    Retrainer,
    agreement,
    leave_one_out,
    most_influential_rows,
)
