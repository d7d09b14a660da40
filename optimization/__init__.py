"""Optimizers (AdamW, LAMB, LARS, momentum/Nesterov) and learning-rate schedules.

transforms     per-variable parts of update rules (Adam direction, decay, trust ratio...)
wrappers       whole-gradient steps (accumulation, skip inf/NaN, global-norm clipping)
alias          one function per optimizer returning its chain
hparams        hyperparameter defaults and validation
optimizers     the Keras adapter `ChainOptimizer`, `create_optimizer` and
               `create_optimizer_and_schedule` (an optimizer with its schedule)
keras_private  every private Keras/TF call, in one place
schedules      learning-rate schedules with shared argument names
tunable        the searchable numbers as variables: one compiled program for many trials
"""

import data.tf_startup  # noqa: F401  (first: quiet TensorFlow start-up for the CLIs)
from optimization import alias, transforms, tunable, wrappers
from optimization.optimizers import (
    DEFAULTS,
    ChainOptimizer,
    create_optimizer,
    create_optimizer_and_schedule,
)
from optimization.schedules import (
    ConstantSchedule,
    OriginalBertSchedule,
    WarmupCosineSchedule,
    WarmupPolySchedule,
    create_schedule,
    lamb_scaling,
)

__all__ = [
    "DEFAULTS",
    "ChainOptimizer",
    "ConstantSchedule",
    "OriginalBertSchedule",
    "WarmupCosineSchedule",
    "WarmupPolySchedule",
    "alias",
    "create_optimizer",
    "create_optimizer_and_schedule",
    "create_schedule",
    "lamb_scaling",
    "transforms",
    "tunable",
    "wrappers",
]
