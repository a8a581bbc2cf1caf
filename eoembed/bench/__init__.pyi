# Lazy exports (SPEC 1): lazy_loader.attach_stub reads this file; IDEs and type checkers read it too.
from .core import (
    EvalResult as EvalResult,
    evaluate as evaluate,
    label_fraction_curve as label_fraction_curve,
    write_result as write_result,
)
from .metrics import (
    compare as compare,
    leaderboard as leaderboard,
    q_score as q_score,
    tessera_score as tessera_score,
    z_scores as z_scores,
)
from .splits import (
    make_splits as make_splits,
)
from .nulls import (
    null_control as null_control,
    NullControl as NullControl,
    permute_labels as permute_labels,
)
