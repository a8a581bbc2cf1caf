# Lazy exports (SPEC 1): lazy_loader.attach_stub reads this file; IDEs and type checkers read it too.
from .compute import (
    data_for_flops as data_for_flops,
    flops as flops,
    L_REF as L_REF,
)
from .fit import (
    fit_isoflop as fit_isoflop,
    fit_power_law as fit_power_law,
    isoflop_buckets as isoflop_buckets,
    loss_score_correlation as loss_score_correlation,
    ScalingFit as ScalingFit,
    scaling_laws as scaling_laws,
)
from .plot import (
    plot_frontier as plot_frontier,
    plot_isoflop as plot_isoflop,
    plot_loss_vs_score as plot_loss_vs_score,
)
from .runner import (
    expand_grid as expand_grid,
    read_sweep as read_sweep,
    resolve_run_fn as resolve_run_fn,
    run_id as run_id,
    sweep as sweep,
    SweepError as SweepError,
)
from .synthetic import (
    isoflop_configs as isoflop_configs,
    planted_exponents as planted_exponents,
    planted_optimum as planted_optimum,
    PLANTED as PLANTED,
    synthetic_run as synthetic_run,
)
