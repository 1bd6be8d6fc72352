"""Inverse-Hessian solvers. They see the Hessian only through
:class:`HessianOperator` (products, diagonal, and a dense form for ``exact``)."""

from ._base import ConvergenceError, HessianOperator, InverseHessian, SolverReport
from ._cg import CGInverseHessian
from ._exact import ExactInverseHessian
from ._lissa import LissaInverseHessian
from ._row_space import RowSpaceInverse

SOLVERS = {
    "exact": ExactInverseHessian,
    "cg": CGInverseHessian,
    "lissa": LissaInverseHessian,
}

__all__ = [
    "SOLVERS",
    "CGInverseHessian",
    "ConvergenceError",
    "ExactInverseHessian",
    "HessianOperator",
    "InverseHessian",
    "LissaInverseHessian",
    "RowSpaceInverse",
    "SolverReport",
]
