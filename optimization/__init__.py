"""Optimizers (AdamW, LAMB, LARS, momentum/Nesterov) and learning-rate schedules."""

from optimization.optimizers import ChainOptimizer, create_optimizer, DEFAULTS
from optimization.schedules import (
    create_schedule,
    lamb_scaling,
    OriginalBertSchedule,
    WarmupPolySchedule,
    WarmupCosineSchedule,
    ConstantSchedule,
)
from optimization import transforms

__all__ = [
    "ChainOptimizer",
    "create_optimizer",
    "DEFAULTS",
    "create_schedule",
    "lamb_scaling",
    "OriginalBertSchedule",
    "WarmupPolySchedule",
    "WarmupCosineSchedule",
    "ConstantSchedule",
    "transforms",
]
