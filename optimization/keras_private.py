"""Every private Keras / TensorFlow API this package uses, in one place.

`ChainOptimizer` subclasses `keras.optimizers.Optimizer` and needs a few of its
internals that Keras does not export. Each one is reached through exactly one
function here, so a Keras or TensorFlow upgrade that renames or changes one of
them means editing this file only. Checked against Keras 3.15 / TF 2.21.
"""

import tensorflow as tf


def trainable_variables(optimizer):
    """The variables `optimizer.build` was called with (BaseOptimizer._trainable_variables)."""
    return optimizer._trainable_variables


def iterations_variable(optimizer):
    """The update-count variable (BaseOptimizer._iterations).

    Keras's public `iterations` divides by its own accumulation steps; ours does
    not use Keras accumulation and must be able to `assign_add` the variable.
    """
    return optimizer._iterations


def learning_rate_setting(optimizer):
    """The float variable or LearningRateSchedule given at construction (._learning_rate)."""
    return optimizer._learning_rate


def current_learning_rate(optimizer):
    """The schedule evaluated at `iterations`, or the fixed rate (._get_current_learning_rate)."""
    return optimizer._get_current_learning_rate()


def check_and_filter(optimizer, grads, variables):
    """Raises on variables `optimizer` was not built with; drops (grad=None, variable) pairs.

    (BaseOptimizer._check_variables_are_known, ._filter_empty_gradients.)
    """
    optimizer._check_variables_are_known(variables)
    return optimizer._filter_empty_gradients(grads, variables)


def variable_index(optimizer, variable):
    """Position of `variable` in the build list, which indexes its slots (._get_variable_index)."""
    return optimizer._get_variable_index(variable)


def merge_call(optimizer, fn, *args):
    """Calls fn(strategy, *args) in cross-replica context (merge_call) from a replica context.

    (tf.__internal__.distribute.interim.maybe_merge_call with the optimizer's
    TFOptimizer._distribution_strategy; calls fn directly when not distributed.)
    """
    return tf.__internal__.distribute.interim.maybe_merge_call(
        fn, optimizer._distribution_strategy, *args
    )
