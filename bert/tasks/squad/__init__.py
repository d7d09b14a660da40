"""SQuAD v1.1 fine-tuning, prediction and evaluation as a library (`bert.run_squad` runs it).

Layers, each depending only on those above it:
  options      SquadOptions: the flags and their checks;
  task         SquadTask for the Trainer: model inputs, loss, variables; the optimizer;
  preparation  train.tf_record / eval.tf_record, the choice of length buckets, the input;
  prediction   the forward pass over each predict file, answers, EM / F1;
  fine_tuning  one run in an output_dir: data, model, training, prediction, export;
  seeds        one run per seed and the spread of their scores;
  driver       `run(options)`: what the command line does.
"""

from bert.tasks.squad.driver import run, serve_demo
from bert.tasks.squad.fine_tuning import (
    FINE_TUNED_CONFIG,
    TRAIN_STATE,
    fine_tune,
    fine_tuned_step,
    run_one,
)
from bert.tasks.squad.options import SquadOptions, predict_name
from bert.tasks.squad.prediction import (
    evaluate,
    make_predict_step,
    predict_compiled,
    predict_results,
    prediction_buckets,
    prediction_inputs,
    run_prediction,
)
from bert.tasks.squad.preparation import (
    CPU_COMPILE_STEPS_SCALE,
    PredictData,
    choose_buckets,
    estimated_compile_steps,
    prepare_predict_data,
    prepare_train_data,
    training_input,
)
from bert.tasks.squad.seeds import run_seeds, seed_spread
from bert.tasks.squad.task import (
    SquadTask,
    create_optimizer_and_schedule,
    model_inputs,
    squad_loss,
    trainable_variables,
)

__all__ = [
    "CPU_COMPILE_STEPS_SCALE",
    "FINE_TUNED_CONFIG",
    "TRAIN_STATE",
    "PredictData",
    "SquadOptions",
    "SquadTask",
    "choose_buckets",
    "create_optimizer_and_schedule",
    "estimated_compile_steps",
    "evaluate",
    "fine_tune",
    "fine_tuned_step",
    "make_predict_step",
    "model_inputs",
    "predict_compiled",
    "predict_name",
    "predict_results",
    "prediction_buckets",
    "prediction_inputs",
    "prepare_predict_data",
    "prepare_train_data",
    "run",
    "run_one",
    "run_prediction",
    "run_seeds",
    "seed_spread",
    "serve_demo",
    "squad_loss",
    "trainable_variables",
    "training_input",
]
