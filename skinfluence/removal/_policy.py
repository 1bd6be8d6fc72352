"""The one place that decides how removals are computed for a fit.

:func:`rule_for` reads four things -- the objective's *family*, the
*space* the inverse Hessian lives in, the *approximation* asked for and the
*dtype* -- and looks them up in :data:`POLICY`, a table whose entries build a
:class:`RemovalModel` or refuse with what to do instead:

========  ==========  ===============================  ===============================
family    space       approximation                    removal model
========  ==========  ===============================  ===============================
smooth    parameters  influence / newton / refit       FirstOrder / Newton / NewtonRefit
smooth    rows        influence / newton               RowSpace / RowSpaceNewton
hinge     parameters  influence / path                 ActiveSet / Path (on the design)
hinge     rows        influence / path                 RowSpaceActiveSet / Path (row space)
========  ==========  ===============================  ===============================

*family* is ``"hinge"`` for single-output hinge-type fits (``LinearSVC(loss=
"hinge")``, ``SVC``, ``SVR``, ``LinearSVR(loss="epsilon_insensitive")``)
with ``hinge="active_set"``, ``"smooth"`` otherwise (a hinge with
``hinge="smoothed"`` is smoothed, Koh & Liang section 4.3). *space* is
``"rows"`` for kernel models whose Hessian is applied in the row space of
the training rows (``solver="cg"``, or ``"auto"`` beyond ``exact_max``
rows). Float32 applies where the work is passes over the rows; small KKT,
path, row-space and Newton-iteration systems need float64.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import is_numpy, to_numpy
from ..solvers import SOLVERS, HessianOperator
from ..solvers._active_set import (
    ActiveSetInverse,
    hinge_diagnostics,
    hinge_kkt,
    warn_if_collapsed,
)
from ..solvers._decremental import DecrementalPath
from ..solvers._row_space import RowSpaceInverse
from ._base import BlockBudget, RemovalModel
from ._linearised import (
    ActiveSetRemoval,
    FirstOrderRemoval,
    NewtonRemoval,
    RowSpaceNewtonRemoval,
    RowSpaceRemoval,
)
from ._refitted import (
    FirstSegmentRemoval,
    ModifiedData,
    NewtonChangeStep,
    NewtonMinimiser,
    NewtonRefitRemoval,
    PathRemoval,
)

#: parameter count up to which solver="auto" factors the dense Hessian
EXACT_MAX_PARAMS = 4000


@dataclass(frozen=True)
class Setting:
    """What the policy reads: ``family``, ``space``, ``approximation`` and
    whether the data is float32."""

    family: str
    space: str
    approximation: str
    float32: bool


def row_space(spec, *, solver: str, hinge: str, n_train: int, xp) -> bool:
    """Whether a kernel model is explained in row space: kernel ridge or a
    hinge kernel model (``hinge="active_set"``) with ``solver="cg"``, or
    beyond ``spec.exact_max`` rows with ``"auto"``. Nothing ``n x n`` is held
    there; kernel values are evaluated on demand."""
    if not (getattr(spec, "supports_row_space", False) and is_numpy(xp)):
        return False
    if not spec.smooth and hinge != "active_set":
        return False  # the smoothed hinge keeps the kernel features
    return solver == "cg" or (solver == "auto" and n_train > spec.exact_max)


def _active_set_applies(spec) -> bool:
    """A single-output hinge-type objective without per-row penalty shares:
    its optimum is a vertex the KKT system describes."""
    loss = spec.train_loss
    return (
        not spec.smooth
        and spec.n_outputs == 1
        and hasattr(loss, "kink_distance")
        and (spec.share is None or spec.share_scale == 0.0)
    )


def family(spec, *, hinge: str, space: str) -> str:
    """``"hinge"`` where removals are solved on the hinge's active set."""
    if spec.smooth or hinge != "active_set":
        return "smooth"
    return "hinge" if space == "rows" or _active_set_applies(spec) else "smooth"


@dataclass(frozen=True)
class FitContext:
    """Everything a removal model is built from.

    Parameters
    ----------
    spec : ModelSpec
        Prepared for the training rows.
    state : ObjectiveState
        The objective at the fitted parameters.
    data : tuple
        ``(X, y, sample_weight)``: training features in the work namespace,
        labels and weights as given (for objectives without some rows).
    budget : BlockBudget
    solver : {"auto", "exact", "cg", "lissa"}
    solver_options : dict
    damping : float
    verbose : int
    """

    spec: Any
    state: Any
    data: tuple
    budget: BlockBudget
    solver: str
    solver_options: dict
    damping: float
    verbose: int

    @functools.cached_property
    def kkt(self):
        """The hinge's KKT split (:func:`hinge_kkt`) of a single-output
        hinge-type fit in parameter space, or None."""
        state = self.state
        if self.spec.smooth or state.design.n_outputs != 1:
            return None
        if not hasattr(state.objective.loss, "kink_distance"):
            return None
        return hinge_kkt(state)

    @property
    def stationarity(self) -> float:
        """How far the fitted parameters are from an optimum: the smooth
        objective's relative gradient, or the hinge's KKT residual (the
        smoothed loss is not stationary at the hinge optimum by construction)."""
        if self.spec.smooth:
            return self.state.stationarity()
        return self.kkt.residual if self.kkt is not None else float("nan")

    @property
    def solver_name(self) -> str:
        if self.solver != "auto":
            return self.solver
        return "exact" if self.state.n_params <= EXACT_MAX_PARAMS else "cg"

    def options(self, iterative: bool) -> dict:
        options = dict(self.solver_options)
        if iterative:
            options.setdefault("verbose", self.verbose)
        return options

    def inverse_hessian(self):
        name = self.solver_name
        operator = HessianOperator(self.state, self.damping)
        return SOLVERS[name](operator, **self.options(name in ("cg", "lissa")))

    def modified_data(self) -> ModifiedData:
        """Objectives on modified training data, as the estimator defines them."""
        return ModifiedData(self.spec, *self.data, self.state.xp)

    def minimiser(self) -> NewtonMinimiser:
        """Newton's method with the explainer's solver for each step."""
        return NewtonMinimiser(self.solver_name, self.options(False), self.damping)

    def kernel_penalty_strength(self) -> float:
        """``lambda`` of a kernel model in row space: the penalty ``lambda
        beta^T K beta / 2`` it was fitted with (one for every output)."""
        penalty = float(np.ravel(self.spec.coef_penalty)[0])
        return self.state.objective.total_strength * penalty


# --- builders: one per table entry -----------------------------------------
def _first_order(ctx):
    model = FirstOrderRemoval(
        ctx.state, ctx.inverse_hessian(), ctx.budget, ctx.stationarity, data=ctx.modified_data()
    )
    model.check_leverage()
    return model


def _newton(ctx):
    step = NewtonChangeStep(ctx.state, ctx.minimiser())
    return NewtonRemoval(
        ctx.state,
        ctx.inverse_hessian(),
        ctx.budget,
        ctx.stationarity,
        data=ctx.modified_data(),
        step=step,
    )


def _refit(ctx):
    return NewtonRefitRemoval(ctx.state, ctx.modified_data(), ctx.budget, ctx.minimiser())


def _row_space_inverse(ctx):
    state = ctx.state
    D = to_numpy(state.D)
    d = D[:, 0, 0]
    K = D.shape[1]
    # the outputs share one Hessian block only with curvature d_i I per row
    if not np.allclose(D, d[:, None, None] * np.eye(K)[None], rtol=1e-12, atol=0):
        raise ValueError("row-space influence needs the same curvature for every output")
    options = ctx.options(True)
    # the preconditioner's n x r factor (and its growth copy) within the budget
    n = state.design.n_samples
    options.setdefault("preconditioner_rank", min(500, ctx.budget.max_bytes // (16 * n)))
    return RowSpaceInverse(
        ctx.spec.training_kernel(),
        ctx.spec.kernel_diagonal,
        d,
        ctx.kernel_penalty_strength() + ctx.damping,
        **options,
    )


def _row_space(ctx):
    return RowSpaceRemoval(ctx.state, _row_space_inverse(ctx), ctx.budget, ctx.stationarity)


def _row_space_newton(ctx):
    return RowSpaceNewtonRemoval(ctx.state, _row_space_inverse(ctx), ctx.budget, ctx.stationarity)


def _active_set(ctx):
    # the first segment of each removal's path: checks the KKT inverse's
    # answer (valid while the margin set holds), and replaces it at a
    # degenerate vertex, where the multipliers are not unique and only the
    # path's pivots tell which of them can absorb a removed row's (or, in a
    # collapsed fit, where the intercept moves to)
    first = DecrementalPath.on_design(
        ctx.state, ctx.kkt, damping=ctx.damping, max_events=0, verbose=ctx.verbose
    )
    diagnostics = hinge_diagnostics(ctx.state, ctx.kkt)
    diagnostics["degenerate"] = first.degenerate
    first.report.details.update(diagnostics)
    if first.degenerate:
        return FirstSegmentRemoval(ctx.state, first, ctx.budget, ctx.stationarity)
    inverse = ActiveSetInverse(HessianOperator(ctx.state, ctx.damping), kkt=ctx.kkt)
    inverse.report.details.update(diagnostics)
    first.report.details.update(inverse.report.details)
    return ActiveSetRemoval(ctx.state, inverse, ctx.budget, ctx.stationarity, probe=first)


def _path_on_design(ctx):
    path = DecrementalPath.on_design(ctx.state, ctx.kkt, damping=ctx.damping, verbose=ctx.verbose)
    path.report.details.update(hinge_diagnostics(ctx.state, ctx.kkt), degenerate=path.degenerate)
    return PathRemoval(ctx.state, path, ctx.budget, ctx.stationarity)


def _row_space_path(ctx, cls=PathRemoval):
    fitted = ctx.kernel_penalty_strength()
    path = DecrementalPath.in_row_space(
        ctx.state,
        ctx.spec.training_kernel(),
        fitted + ctx.damping,
        fitted,
        damping=ctx.damping,
        max_events=None if cls.exact else 0,
        verbose=ctx.verbose,
    )
    bound = int(np.sum((path.nu0 != 0) & ~path.on0))
    path.report.details.update(
        kkt_residual=path.kkt_residual,
        bound_rows=bound,
        collapsed=warn_if_collapsed(path.n, path.n_margin, bound),
    )
    return cls(ctx.state, path, ctx.budget, path.kkt_residual)


def _row_space_active_set(ctx):
    return _row_space_path(ctx, FirstSegmentRemoval)


# --- refusals ----------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """A table entry that does not apply; ``message`` is formatted with the
    estimator's class name (``estimator``) and the explainer's ``hinge``."""

    message: str


_PATH_NEEDS_HINGE = Refusal(
    "approximation='path' follows the solution path of a hinge-type model "
    "(LinearSVC(loss='hinge'), SVC, SVR, LinearSVR(loss='epsilon_insensitive')) with "
    "hinge='active_set'; {estimator} with hinge={hinge!r} is not one. Use "
    "approximation='newton' for smooth objectives."
)
_NEWTON_ON_HINGE = Refusal(
    "approximation='newton' does not apply to hinge='active_set' (its margin rows are "
    "removed exactly); use approximation='path' for the exact effect of removals, or "
    "approximation='influence'."
)
_REFIT_ON_HINGE = Refusal(
    "approximation='refit' runs Newton iterations on a smooth objective; {estimator} "
    "with hinge='active_set' is piecewise linear. Use approximation='path' for the "
    "exact effect of removals."
)
_REFIT_IN_ROW_SPACE = Refusal(
    "approximation='refit' needs the model's parameters, which a kernel model explained "
    "in row space never forms. Use solver='exact' (kernel features) with at most a few "
    "thousand training rows, or approximation='newton'."
)


@dataclass(frozen=True)
class Rule:
    """One entry of :data:`POLICY`: how to build the removal model, or why
    not; ``float32`` is None where float32 applies, else ``(what, fix)`` for
    the refusal."""

    build: Callable[[FitContext], RemovalModel] | Refusal
    float32: tuple[str, str] | None = None


_ROW_SPACE_32 = (
    "a kernel model explained in row space (solver='cg' or beyond 3000 rows)",
    "or solver='exact' with at most 3000 training rows",
)
_PATH_32 = ("approximation='path'", "or approximation='influence'")
_ACTIVE_SET_32 = ("hinge='active_set'", "or hinge='smoothed'")
_REFIT_32 = ("approximation='refit'", "or approximation='newton'")

#: (family, space, approximation) -> Rule
POLICY: dict[tuple[str, str, str], Rule] = {
    ("smooth", "parameters", "influence"): Rule(_first_order),
    ("smooth", "parameters", "newton"): Rule(_newton),
    ("smooth", "parameters", "refit"): Rule(_refit, _REFIT_32),
    ("smooth", "parameters", "path"): Rule(_PATH_NEEDS_HINGE),
    ("smooth", "rows", "influence"): Rule(_row_space, _ROW_SPACE_32),
    ("smooth", "rows", "newton"): Rule(_row_space_newton, _ROW_SPACE_32),
    ("smooth", "rows", "refit"): Rule(_REFIT_IN_ROW_SPACE),
    ("smooth", "rows", "path"): Rule(_PATH_NEEDS_HINGE),
    ("hinge", "parameters", "influence"): Rule(_active_set, _ACTIVE_SET_32),
    ("hinge", "parameters", "newton"): Rule(_NEWTON_ON_HINGE),
    ("hinge", "parameters", "refit"): Rule(_REFIT_ON_HINGE),
    ("hinge", "parameters", "path"): Rule(_path_on_design, _PATH_32),
    ("hinge", "rows", "influence"): Rule(_row_space_active_set, _ROW_SPACE_32),
    ("hinge", "rows", "newton"): Rule(_NEWTON_ON_HINGE),
    ("hinge", "rows", "refit"): Rule(_REFIT_ON_HINGE),
    ("hinge", "rows", "path"): Rule(_row_space_path, _ROW_SPACE_32),
}

APPROXIMATIONS = sorted({key[2] for key in POLICY})


def rule_for(setting: Setting, estimator_name: str, hinge: str) -> Rule:
    """The table entry for ``setting``; raises its refusal (as ``ValueError``)."""
    rule = POLICY[setting.family, setting.space, setting.approximation]
    if isinstance(rule.build, Refusal):
        raise ValueError(rule.build.message.format(estimator=estimator_name, hinge=hinge))
    if setting.float32 and rule.float32 is not None:
        what, fix = rule.float32
        raise ValueError(
            f"dtype='float32' does not apply to {what}: its small KKT, row-space or "
            f"Newton systems need float64. Pass dtype='float64', {fix}."
        )
    return rule
