"""The removal-model layer: what removing training rows does to a fitted model.

Each way of computing it is one :class:`RemovalModel`; :func:`rule_for`
picks one per fit from the table :data:`POLICY`.
"""

from ._base import BlockBudget, NotAvailableError, RemovalModel, TestQuery, effect_of_shifts
from ._linearised import (
    ActiveSetRemoval,
    FirstOrderRemoval,
    NewtonRemoval,
    RowSpaceNewtonRemoval,
    RowSpaceRemoval,
)
from ._policy import (
    APPROXIMATIONS,
    EXACT_MAX_PARAMS,
    POLICY,
    FitContext,
    Refusal,
    Rule,
    Setting,
    family,
    row_space,
    rule_for,
)
from ._refitted import (
    FirstSegmentRemoval,
    ModifiedData,
    NewtonChangeStep,
    NewtonMinimiser,
    NewtonRefitRemoval,
    ParameterShiftRemoval,
    PathRemoval,
)

__all__ = [
    "APPROXIMATIONS",
    "EXACT_MAX_PARAMS",
    "POLICY",
    "ActiveSetRemoval",
    "BlockBudget",
    "FirstOrderRemoval",
    "FitContext",
    "ModifiedData",
    "NewtonChangeStep",
    "NewtonMinimiser",
    "NewtonRefitRemoval",
    "NewtonRemoval",
    "NotAvailableError",
    "ParameterShiftRemoval",
    "PathRemoval",
    "Refusal",
    "RemovalModel",
    "FirstSegmentRemoval",
    "RowSpaceNewtonRemoval",
    "RowSpaceRemoval",
    "Rule",
    "Setting",
    "TestQuery",
    "effect_of_shifts",
    "family",
    "row_space",
    "rule_for",
]
