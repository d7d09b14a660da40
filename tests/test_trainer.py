"""The shared Trainer with a third task, and options declared once as dataclasses."""

import dataclasses
import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import bert
import optimization
from bert.studies import scaling, search
from bert.tasks import pretraining_phase
from bert.tasks.squad import options as squad_options
from bert.training import options as opts
from bert.training import trainer as trainer_lib


class PairClassificationTask:
    """A classifier on the pooled [CLS] output: the whole task a new head needs to write."""

    log_metrics = {"accuracy": "acc"}

    def model_inputs(self, batch):
        return {k: batch[k] for k in ("input_ids", "input_mask", "segment_ids")}

    def trainable_variables(self, model):
        return model.trainable_variables

    def global_counts(self, batch):
        return {}

    def losses(self, outputs, batch, counts, global_batch_size):
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(batch["label"], outputs)
        correct = tf.cast(tf.equal(tf.argmax(outputs, -1, tf.int32), batch["label"]), tf.float32)
        return {
            "loss": tf.reduce_sum(ce) / global_batch_size,
            "correct": tf.reduce_sum(correct),
            "examples": tf.cast(tf.size(correct), tf.float32),
        }

    def metrics(self, totals, steps):
        return {"loss": totals["loss"] / steps, "accuracy": totals["correct"] / totals["examples"]}


def classifier(config):
    encoder = bert.build_encoder(config)
    inputs = {
        name: keras.Input((16,), dtype="int32", name=name)
        for name in ("input_ids", "input_mask", "segment_ids")
    }
    logits = keras.layers.Dense(2)(encoder(inputs)["pooled_output"])
    return keras.Model(inputs, logits)


def pair_data():
    """A rule the model can read off the tokens: label = whether the first token is in the upper
    half."""
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 64, (256, 16)).astype(np.int32)
    return {
        "input_ids": ids,
        "input_mask": np.ones_like(ids),
        "segment_ids": np.zeros_like(ids),
        "label": (ids[:, 0] >= 34).astype(np.int32),
    }


def classifier_trainer(model_dir, num_train_steps=60, save_checkpoints_steps=30):
    config = bert.BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = classifier(config)
        optimizer = optimization.create_optimizer("adamw", 3e-3, weight_decay=0.0)
    return trainer_lib.Trainer(
        strategy,
        model,
        optimizer,
        3e-3,
        PairClassificationTask(),
        trainer_lib.TrainerOptions(
            model_dir=str(model_dir),
            num_train_steps=num_train_steps,
            train_batch_size=32,
            steps_per_loop=20,
            save_checkpoints_steps=save_checkpoints_steps,
        ),
    )


def pair_dataset_fn(ctx):
    ds = tf.data.Dataset.from_tensor_slices(pair_data()).repeat().shuffle(256, seed=1)
    return ds.batch(ctx.get_per_replica_batch_size(32), drop_remainder=True)


def test_a_new_task_trains_with_the_shared_loop(tmp_path):
    trainer = classifier_trainer(tmp_path)
    last = trainer.train(pair_dataset_fn)
    log = [
        json.loads(line)
        for line in pathlib.Path(tmp_path / "train_log.jsonl").read_text().splitlines()
    ]
    assert [entry["step"] for entry in log] == [20, 30, 50, 60]  # loops end on save steps
    assert last["accuracy"] > 0.9 and log[0]["loss"] > last["loss"]
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-60")
    data = pair_data()
    results = trainer.evaluate(
        lambda ctx: tf.data.Dataset.from_tensor_slices(data).batch(64, drop_remainder=True), 4, 64
    )
    assert results["eval_examples"] == 256 and results["accuracy"] > 0.9
    assert (
        json.loads(pathlib.Path(tmp_path / "eval_results.json").read_text())["accuracy"]
        == results["accuracy"]
    )


@pytest.mark.slow
def test_a_failed_checkpoint_write_stops_and_keeps_the_previous_one(tmp_path):
    """The step-40 save cannot create its files: a clear error, and step 20 still resumes."""
    (tmp_path / "ckpt-40_temp").write_text("in the way")  # where TF writes before renaming
    trainer = classifier_trainer(tmp_path, num_train_steps=60, save_checkpoints_steps=20)
    with pytest.raises(trainer_lib.CheckpointWriteError, match=r"step 40 .*ckpt-20") as info:
        trainer.train(pair_dataset_fn)
    assert str(tmp_path) in str(info.value)
    resumed = classifier_trainer(tmp_path, num_train_steps=60, save_checkpoints_steps=20)
    assert resumed.restored_from.endswith("ckpt-20") and resumed.current_step() == 20
    (tmp_path / "ckpt-40_temp").unlink()  # space again: the same run goes on to the end
    resumed.train(pair_dataset_fn)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-60")


# Flag names of google-research/bert's run_squad.py that this project keeps.
GOOGLE_SQUAD_FLAGS = [
    "bert_config_file",
    "vocab_file",
    "output_dir",
    "train_file",
    "predict_file",
    "init_checkpoint",
    "do_lower_case",
    "max_seq_length",
    "doc_stride",
    "max_query_length",
    "do_train",
    "do_predict",
    "train_batch_size",
    "predict_batch_size",
    "learning_rate",
    "num_train_epochs",
    "warmup_proportion",
    "save_checkpoints_steps",
    "iterations_per_loop",
    "n_best_size",
    "max_answer_length",
]


@pytest.mark.parametrize(
    "cls",
    [
        pretraining_phase.PretrainingOptions,
        squad_options.SquadOptions,
        opts.RuntimeOptions,
        search.SearchOptions,
        scaling.RealityCheckOptions,
    ],
)
def test_every_option_is_one_flag_with_its_default(cls):
    values = flags.FlagValues()
    opts.define_flags(cls, values)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(values) == set(fields)
    for name, field in fields.items():
        assert values[name].default == field.default, name
        assert values[name].help.endswith(field.metadata["help"]), name
    assert dataclasses.asdict(opts.parse(cls, ["prog"])) == dataclasses.asdict(cls())


def test_flags_parse_into_one_options_object():
    squad = opts.parse(
        squad_options.SquadOptions,
        ["prog", "--train_batch_size=48", "--nodo_lower_case", "--strategy=mirrored"],
    )
    assert (squad.train_batch_size, squad.do_lower_case, squad.strategy) == (48, False, "mirrored")
    assert set(GOOGLE_SQUAD_FLAGS) <= {f.name for f in dataclasses.fields(squad)}
    with pytest.raises(flags.IllegalFlagValueError):
        opts.parse(squad_options.SquadOptions, ["prog", "--strategy=gpu_cluster"])
    pre = opts.parse(
        pretraining_phase.PretrainingOptions,
        ["prog", "--model_dir=/tmp/x", "--learning_rate=2e-3", "--num_train_steps=7"],
    )
    assert pre.phase_overrides() == {"learning_rate": 2e-3, "num_train_steps": 7}
