r"""SQuAD v1.1 fine-tuning, prediction and evaluation (google-research/bert flag names).

  python -m bert.run_squad --init_checkpoint=$MODEL_DIR --do_train --do_predict \
      --train_file=train-v1.1.json --predict_file=dev-v1.1.json --output_dir=/tmp/squad \
      --export_dir=/tmp/squad/export
  python -m bert.run_squad --do_serve_demo --export_dir=/tmp/squad/export \
      --question="Who wrote it?" --context="The book was written by Jane Doe in 1901."

Initialization (`--init_checkpoint`), one flag for every source:
  * a Google BERT directory (`bert_config.json` + `bert_model.ckpt.*`) or a TF1 checkpoint
    prefix (`.../bert_model.ckpt`), read by `bert.load_pretrained`;
  * a Hugging Face directory (`config.json` + `model.safetensors`, e.g. MiniLM), read by
    `bert.load_pretrained`;
  * this project's pretraining `--model_dir` (or one `ckpt-N` prefix in it), an object-based
    `tf.train.Checkpoint(model=pretraining_model, optimizer=...)`: only `model.encoder` is
    restored (the pretraining heads and optimizer slots are skipped), the config comes from
    `--bert_config_file` or from the `phase_config.json` that run_pretraining writes beside it;
  * a SQuAD model written by this script (`<output_dir>` or its `ckpt-N`): encoder AND span
    head are restored. Running with --do_predict and without --do_train on an output_dir
    that holds a fine-tuned checkpoint uses that checkpoint.
`--bert_config_file` overrides the config found in the directory; `--vocab_file` defaults to
the directory's `vocab.txt`. The span head is new (truncated normal 0.02) unless the
checkpoint has one.

Defaults are the BERT-Large SQuAD v1.1 recipe that the LAMB paper (You et al., 2020) and the
tuned-Adam comparison (Nado et al., 2021) reused: the google-research/bert README command for
BERT-Large on TPU, train_batch_size 24, learning_rate 3e-5, num_train_epochs 2.0, warmup 10%,
max_seq_length 384, doc_stride 128. (The defaults inside google-research/bert run_squad.py
itself are different: train_batch_size 32, learning_rate 5e-5, num_train_epochs 3.0.)
As in the original, num_train_steps = int(len(train_examples) / train_batch_size *
num_train_epochs) counts examples (questions), not windows.

Optimizer: `--optimizer=adamw` is the original BERT AdamW (beta 0.9/0.999, epsilon 1e-6, no
bias correction, decoupled weight decay 0.01 except LayerNorm and biases, global-norm clip
1.0); `--optimizer=lamb` uses the same weight decay / clip / epsilon with LAMB's bias
correction. `--optimizer_hparams` (JSON) overrides any `optimization.create_optimizer`
hyperparameter. Schedules: `original_bert` (linear warmup over a linear decay from step 0)
or `warmup_poly` (linear warmup 0 -> lr, then linear decay to 0).

Loss: mean over the global batch of (start cross-entropy + end cross-entropy) / 2. Each
replica computes its local sum divided by the GLOBAL batch; the optimizer sums over
replicas. The step is XLA-compiled (static shapes, drop_remainder) and runs
`--iterations_per_loop` steps per host call.

Resuming: every --save_checkpoints_steps the model, optimizer and dropout states go to
output_dir/train_state; run the same command again after a kill and training continues at
that step, skipping the batches already used (the input order is fixed by --seed).

Outputs in --output_dir: train.tf_record / eval.tf_record, the fine-tuned checkpoint
(`ckpt-N`), predictions.json, nbest_predictions.json, eval_results.json (exact_match, f1 and
counts; printed as JSON too), TensorBoard events in train/ and eval/. With --export_dir, a
SavedModel whose `serving_default` signature takes raw question and context strings
(see `bert.squad_export`).
"""

import json
import os
import random
import time

from absl import app, flags, logging

flags.DEFINE_string(
    "bert_config_file",
    None,
    "bert_config.json (or HF config.json); default: the one in init_checkpoint.",
)
flags.DEFINE_string(
    "init_checkpoint",
    None,
    "Google BERT dir / TF1 prefix, Hugging Face dir, this project's pretraining "
    "model_dir or checkpoint, or a fine-tuned SQuAD output_dir (see module doc).",
)
flags.DEFINE_string("vocab_file", None, "WordPiece vocab (default: init_checkpoint/vocab.txt).")
flags.DEFINE_bool("do_lower_case", True, "Lower-case (uncased models).")
flags.DEFINE_string("train_file", None, "SQuAD JSON for training, e.g. train-v1.1.json.")
flags.DEFINE_string("predict_file", None, "SQuAD JSON for predictions, e.g. dev-v1.1.json.")
flags.DEFINE_string("output_dir", None, "Where records, checkpoints and predictions go.")
flags.DEFINE_bool("do_train", False, "Fine-tune on train_file.")
flags.DEFINE_bool("do_predict", False, "Predict predict_file and evaluate (EM/F1).")
flags.DEFINE_integer("train_batch_size", 24, "GLOBAL training batch.")
flags.DEFINE_integer("predict_batch_size", 8, "GLOBAL prediction batch.")
flags.DEFINE_float("learning_rate", 3e-5, "Peak learning rate.")
flags.DEFINE_float("num_train_epochs", 2.0, "Epochs over the training questions.")
flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of the steps spent in linear warmup.")
flags.DEFINE_integer("max_seq_length", 384, "Tokens per window ([CLS] q [SEP] doc [SEP]).")
flags.DEFINE_integer("doc_stride", 128, "Stride between document windows.")
flags.DEFINE_integer("max_query_length", 64, "Question tokens kept.")
flags.DEFINE_integer("n_best_size", 20, "Start/end candidates per window.")
flags.DEFINE_integer("max_answer_length", 30, "Longest answer in tokens.")
flags.DEFINE_integer("iterations_per_loop", 50, "Training steps per host call (log interval).")
flags.DEFINE_integer(
    "save_checkpoints_steps", 1000, "Save the training state (for resuming) this often; 0: never."
)
flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"], "Update rule.")
flags.DEFINE_string(
    "optimizer_hparams",
    "{}",
    "JSON object of optimization.create_optimizer overrides, e.g. '{\"bias_correction\": true}'.",
)
flags.DEFINE_enum(
    "schedule", "original_bert", ["original_bert", "warmup_poly"], "Learning-rate schedule."
)
flags.DEFINE_enum(
    "strategy",
    "one_device",
    ["tpu", "multi_worker", "mirrored", "one_device"],
    "tf.distribute strategy.",
)
flags.DEFINE_string("tpu", "", "TPU name or grpc address.")
flags.DEFINE_integer("num_cpu_devices", 0, "--strategy=mirrored on CPU: logical devices.")
flags.DEFINE_bool("jit_compile", True, "XLA-compile the training and prediction steps.")
flags.DEFINE_enum("mixed_precision", "none", ["bf16", "fp16", "none"], "Compute dtype policy.")
flags.DEFINE_integer("seed", 12345, "Seed of example shuffling, initialization and dropout.")
flags.DEFINE_string(
    "export_dir",
    None,
    "Write (after training/prediction) or, with --do_serve_demo, read a "
    "SavedModel answering raw (question, context) strings.",
)
flags.DEFINE_bool("do_serve_demo", False, "Answer --question about --context with --export_dir.")
flags.DEFINE_string("question", None, "Question for --do_serve_demo.")
flags.DEFINE_string("context", None, "Context paragraph for --do_serve_demo.")

FLAGS = flags.FLAGS

PHASE_CONFIG = "phase_config.json"  # written by bert.run_pretraining
FINE_TUNED_CONFIG = "bert_config.json"  # written beside the fine-tuned checkpoint
TRAIN_STATE = "train_state"  # output_dir subdirectory of the resumable training state


# ----------------------------------------------------------------------------------------------
# Initialization


def _checkpoint_dir(path):
    """The directory of a model directory or of a checkpoint prefix inside one."""
    import tensorflow as tf

    return path if tf.io.gfile.isdir(path) else os.path.dirname(path)


def _object_graph_children(reader):
    """Root-level object graph of an object-based checkpoint: {name: {child names}}."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    names = {}
    for child in graph.nodes[0].children:
        names[child.local_name] = {c.local_name for c in graph.nodes[child.node_id].children}
    return names


def _object_checkpoint(path):
    """(`ckpt-N` prefix, root object graph) for an object-based checkpoint, else (None, None)."""
    import tensorflow as tf

    prefix = tf.train.latest_checkpoint(path) if tf.io.gfile.isdir(path) else path
    if not prefix or not tf.io.gfile.exists(prefix + ".index"):
        return None, None
    reader = tf.train.load_checkpoint(prefix)
    if "_CHECKPOINTABLE_OBJECT_GRAPH" not in reader.get_variable_to_shape_map():
        return None, None  # A TF1 (name-based) checkpoint such as Google's bert_model.ckpt.
    return prefix, _object_graph_children(reader)


def resolve_config(init_checkpoint, bert_config_file=None):
    """The BertConfig: `bert_config_file`, else the one that belongs to `init_checkpoint`."""
    import tensorflow as tf
    import bert

    if bert_config_file:
        return bert.BertConfig.from_json_file(bert_config_file)
    if not init_checkpoint:
        raise ValueError("give --bert_config_file or an --init_checkpoint holding a config")
    directory = _checkpoint_dir(init_checkpoint)
    for name in ("bert_config.json", "config.json"):
        if tf.io.gfile.exists(os.path.join(directory, name)):
            return bert.BertConfig.from_json_file(os.path.join(directory, name))
    phase_config = os.path.join(directory, PHASE_CONFIG)
    if tf.io.gfile.exists(phase_config):
        with tf.io.gfile.GFile(phase_config) as f:
            return bert.BertConfig(**json.load(f)["bert_config"])
    raise FileNotFoundError(
        f"{init_checkpoint}: no bert_config.json, config.json or {PHASE_CONFIG} there; "
        "pass --bert_config_file"
    )


def resolve_vocab_file(vocab_file, init_checkpoint):
    """`vocab_file`, else the vocab.txt beside `init_checkpoint`."""
    import tensorflow as tf

    if vocab_file:
        return vocab_file
    if init_checkpoint:
        candidate = os.path.join(_checkpoint_dir(init_checkpoint), "vocab.txt")
        if tf.io.gfile.exists(candidate):
            return candidate
    raise ValueError("--vocab_file is required (no vocab.txt beside --init_checkpoint)")


def initialize_from_checkpoint(model, init_checkpoint):
    """Fills a SQuAD model from any source listed in the module docstring.

    Returns a short description of what was restored. Shape mismatches raise ValueError naming
    the checkpoint, the variable and both shapes.
    """
    import tensorflow as tf
    import bert

    prefix, graph = _object_checkpoint(init_checkpoint)
    if prefix is None:  # Google (TF1) or Hugging Face: names are mapped by load_pretrained.
        bert.load_pretrained(init_checkpoint, model=model)
        return f"pretrained weights from {init_checkpoint}"
    model_children = graph.get("model")
    if model_children is None or "encoder" not in model_children:
        raise ValueError(
            f"{prefix}: not a checkpoint of this project (expected an object "
            f"'model' with an 'encoder'; found {sorted(graph)})"
        )
    if "span_head" in model_children:
        target, what = model, "fine-tuned SQuAD model (encoder + span head)"
    else:
        # Same attribute path as the pretraining model (model.encoder), without its heads.
        target, what = tf.train.Checkpoint(encoder=model.encoder), "pretrained encoder"
    try:
        status = tf.train.Checkpoint(model=target).read(prefix)
        status.expect_partial()  # Pretraining heads and optimizer slots are not needed.
        status.assert_existing_objects_matched()
    except ValueError as e:  # TF names the variable and both shapes; add the file.
        raise ValueError(f"{prefix}: cannot restore the {what}: {e}") from e
    return f"{what} from {prefix}"


# ----------------------------------------------------------------------------------------------
# Data


def prepare_train_data(
    train_file, tokenizer, output_dir, seed, max_seq_length, doc_stride, max_query_length
):
    """Reads and shuffles the training questions, writes train.tf_record.

    Returns (number of examples, number of features). A malformed file raises
    `data.squad.SquadFormatError` naming the file, the question and the field.
    """
    from data import squad

    examples = squad.read_examples(train_file, is_training=True)
    if not examples:
        raise ValueError(f"{train_file}: no training questions")
    random.Random(seed).shuffle(examples)  # As the original: shuffle before windowing.
    path = os.path.join(output_dir, "train.tf_record")
    start = time.time()
    with squad.FeatureWriter(path, is_training=True) as writer:
        squad.convert_examples_to_features(
            examples,
            tokenizer,
            max_seq_length=max_seq_length,
            doc_stride=doc_stride,
            max_query_length=max_query_length,
            is_training=True,
            output_fn=writer.process_feature,
        )
    logging.info(
        "%s: %d questions -> %d training features in %s (%.1f s)",
        train_file,
        len(examples),
        writer.num_features,
        path,
        time.time() - start,
    )
    return len(examples), writer.num_features


def prepare_predict_data(
    predict_file, tokenizer, output_dir, max_seq_length, doc_stride, max_query_length
):
    """Reads the evaluation questions, writes eval.tf_record; returns (examples, features)."""
    from data import squad

    examples = squad.read_examples(predict_file, is_training=False)
    if not examples:
        raise ValueError(f"{predict_file}: no questions")
    features = squad.convert_examples_to_features(
        examples,
        tokenizer,
        max_seq_length=max_seq_length,
        doc_stride=doc_stride,
        max_query_length=max_query_length,
        is_training=False,
    )
    squad.write_features(features, os.path.join(output_dir, "eval.tf_record"), is_training=False)
    logging.info("%s: %d questions -> %d features", predict_file, len(examples), len(features))
    return examples, features


# ----------------------------------------------------------------------------------------------
# Training


def squad_loss(outputs, batch, global_batch_size):
    """This replica's share of the global-batch mean of (start CE + end CE) / 2."""
    import tensorflow as tf

    def cross_entropy(logits, labels):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=tf.cast(logits, tf.float32)
        )

    start = cross_entropy(outputs["start_logits"], batch["start_positions"])
    end = cross_entropy(outputs["end_logits"], batch["end_positions"])
    return tf.reduce_sum(start + end) / (2.0 * global_batch_size)


def trainable_variables(model):
    """The SQuAD model's trainable variables without the pooler, which the span head never uses
    (so it gets no gradient, as in the original)."""
    pooler = {id(v) for v in model.encoder.pooler.trainable_variables}
    return [v for v in model.trainable_variables if id(v) not in pooler]


def _model_inputs(batch):
    from data import squad

    return {k: batch[k] for k in squad.MODEL_INPUT_KEYS}


class SquadTrainer:
    """Fine-tunes a SQuAD model with a custom loop under any tf.distribute strategy.

    The whole replica step (forward, backward, update) is XLA-compiled on one device / TPU; with
    MirroredStrategy only the forward and backward pass are (the optimizer's all-reduce runs
    outside XLA). `iterations_per_loop` steps run per host call.
    """

    def __init__(
        self,
        strategy,
        model,
        optimizer,
        schedule,
        global_batch_size,
        jit_compile=True,
        summary_dir=None,
    ):
        import tensorflow as tf

        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.global_batch_size = global_batch_size
        self.variables = trainable_variables(model)
        whole_step = jit_compile and isinstance(
            strategy, (tf.distribute.OneDeviceStrategy, tf.distribute.TPUStrategy)
        )
        grads_fn = self._compute_grads
        if jit_compile and not whole_step:
            grads_fn = tf.function(grads_fn, jit_compile=True)
        self._grads_fn = grads_fn
        replica_step = self._replica_step
        if whole_step:
            replica_step = tf.function(replica_step, jit_compile=True)

        @tf.function
        def train_loop(iterator, num_steps):
            total = tf.constant(0.0)
            for _ in tf.range(num_steps):
                loss = strategy.run(replica_step, args=(next(iterator),))
                total += strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
            return total

        self._train_loop = train_loop
        self._writer = (
            tf.summary.create_file_writer(summary_dir)
            if summary_dir
            else tf.summary.create_noop_writer()
        )

    def _compute_grads(self, batch):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            outputs = self.model(_model_inputs(batch), training=True)
            loss = squad_loss(outputs, batch, self.global_batch_size)
        return tape.gradient(loss, self.variables), loss

    def _replica_step(self, batch):
        grads, loss = self._grads_fn(batch)
        self.optimizer.apply_gradients(zip(grads, self.variables))
        return loss

    def train(
        self,
        dataset,
        num_train_steps,
        iterations_per_loop,
        checkpoint_manager=None,
        save_checkpoints_steps=0,
    ):
        """Runs updates on the distributed `dataset` until `num_train_steps`; returns the last loss.

        Starts at the optimizer's step (a resumed run passes a dataset that skips the
        batches used before). With `checkpoint_manager`, saves every `save_checkpoints_steps`.
        """
        import tensorflow as tf

        iterator = iter(dataset)
        step = int(self.optimizer.iterations.numpy())
        start_step, start_time = step, time.time()
        loss = float("nan")
        while step < num_train_steps:
            num_steps = min(iterations_per_loop, num_train_steps - step)
            if checkpoint_manager and save_checkpoints_steps:  # End loops on save steps.
                num_steps = min(num_steps, save_checkpoints_steps - step % save_checkpoints_steps)
            loop_start = time.time()
            total = float(self._train_loop(iterator, tf.constant(num_steps)))
            loop_time = time.time() - loop_start
            step = int(self.optimizer.iterations.numpy())
            loss = total / num_steps
            if loss != loss:  # NaN
                raise FloatingPointError(
                    f"loss became NaN in the {num_steps} steps ending at {step}"
                )
            learning_rate = float(self.schedule(step - 1))
            elapsed = time.time() - start_time
            eta = elapsed / max(step - start_step, 1) * (num_train_steps - step)
            logging.info(
                "step %d/%d (%.1f%%) loss %.4f lr %.3g | %.2f steps/s %.1f examples/s | ETA %s",
                step,
                num_train_steps,
                100.0 * step / num_train_steps,
                loss,
                learning_rate,
                num_steps / loop_time,
                num_steps * self.global_batch_size / loop_time,
                _format_seconds(eta),
            )
            with self._writer.as_default(step=step):
                tf.summary.scalar("loss", loss)
                tf.summary.scalar("learning_rate", learning_rate)
                tf.summary.scalar("steps_per_second", num_steps / loop_time)
                tf.summary.scalar(
                    "examples_per_second", num_steps * self.global_batch_size / loop_time
                )
            if checkpoint_manager and save_checkpoints_steps and step % save_checkpoints_steps == 0:
                checkpoint_manager.save(checkpoint_number=step)
        self._writer.flush()
        return loss


def _format_seconds(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def create_optimizer_and_schedule(
    name, schedule_kind, learning_rate, num_train_steps, num_warmup_steps, hparams=None
):
    """The optimizer (original BERT AdamW settings by default) and its schedule."""
    import optimization

    if schedule_kind == "original_bert":
        schedule = optimization.create_schedule(
            "original_bert",
            init_lr=learning_rate,
            num_train_steps=num_train_steps,
            num_warmup_steps=num_warmup_steps,
            power=1.0,
        )
    else:
        schedule = optimization.create_schedule(
            "warmup_poly",
            init_lr=0.0,
            peak_lr=learning_rate,
            final_lr=0.0,
            warmup_steps=num_warmup_steps,
            total_steps=num_train_steps,
            warmup_power=1.0,
            decay_power=1.0,
        )
    settings = {"epsilon": 1e-6, "weight_decay": 0.01, "clipnorm": 1.0}
    if name == "adamw":
        settings["bias_correction"] = False  # google-research/bert AdamWeightDecayOptimizer
    settings.update(hparams or {})
    return optimization.create_optimizer(name, schedule, **settings), schedule


# ----------------------------------------------------------------------------------------------
# Prediction and evaluation


def predict_logits(strategy, model, dataset, jit_compile=True):
    """Runs the model over a distributed prediction dataset.

    Returns (unique_ids, start_logits, end_logits) as numpy arrays, padding rows included
    (unique id -1; `data.squad.raw_results_from_arrays` drops them).
    """
    import numpy as np
    import tensorflow as tf

    def forward(inputs):
        return model(inputs, training=False)

    forward = tf.function(forward, jit_compile=jit_compile)

    def replica_fn(batch):
        outputs = forward(_model_inputs(batch))
        return batch["unique_ids"], outputs["start_logits"], outputs["end_logits"]

    @tf.function
    @tf.autograph.experimental.do_not_convert
    def predict_step(batch):
        return strategy.run(replica_fn, args=(batch,))

    collected = ([], [], [])
    start_time = time.time()
    for i, batch in enumerate(dataset):
        for values, per_replica in zip(collected, predict_step(batch)):
            values.extend(t.numpy() for t in strategy.experimental_local_results(per_replica))
        if (i + 1) % 100 == 0:
            logging.info(
                "predicted %d batches (%.1f batches/s)", i + 1, (i + 1) / (time.time() - start_time)
            )
    return tuple(np.concatenate(values) for values in collected)


def evaluate(examples, predictions):
    """Official SQuAD v1.1 EM / F1 (max over each question's gold answers), plus counts."""
    from data import squad

    answers = {example.qas_id: example.answers for example in examples}
    scores = squad.squad_metric.evaluate_answers(answers, predictions)
    return {
        **scores,
        "num_questions": len(answers),
        "num_predictions": sum(q in predictions for q in answers),
    }


def run_prediction(strategy, model, examples, features, output_dir, predict_file, flags_, step):
    """Predicts, writes predictions.json / nbest_predictions.json / eval_results.json."""
    import tensorflow as tf
    from data import squad

    batch_size = flags_.predict_batch_size
    dataset = squad.build_squad_dataset(
        os.path.join(output_dir, "eval.tf_record"),
        batch_size,
        flags_.max_seq_length,
        is_training=False,
    )
    dataset = strategy.experimental_distribute_dataset(dataset)
    start = time.time()
    unique_ids, start_logits, end_logits = predict_logits(
        strategy, model, dataset, flags_.jit_compile
    )
    predict_seconds = time.time() - start
    results = squad.raw_results_from_arrays(unique_ids, start_logits, end_logits)
    predictions = squad.write_predictions(
        examples,
        features,
        results,
        os.path.join(output_dir, "predictions.json"),
        os.path.join(output_dir, "nbest_predictions.json"),
        n_best_size=flags_.n_best_size,
        max_answer_length=flags_.max_answer_length,
        do_lower_case=flags_.do_lower_case,
    )
    scores = evaluate(examples, predictions)
    scores.update(
        num_examples=len(examples),
        num_features=len(features),
        predict_seconds=round(predict_seconds, 1),
        global_step=step,
    )
    squad.write_json_atomic(scores, os.path.join(output_dir, "eval_results.json"))
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "eval"))
    with writer.as_default(step=step):
        tf.summary.scalar("exact_match", scores["exact_match"])
        tf.summary.scalar("f1", scores["f1"])
    writer.flush()
    logging.info("Eval results (%s): %s", predict_file, json.dumps(scores))
    return scores


# ----------------------------------------------------------------------------------------------
# Entry point


def serve_demo(export_dir, question, context):
    """Answers `question` about `context` with an exported SavedModel; returns the dict."""
    from bert import squad_export

    answer = squad_export.answer(export_dir, question, context)
    print(json.dumps(answer, ensure_ascii=False))
    return answer


def _validate_flags():
    if FLAGS.do_serve_demo:
        for name in ("export_dir", "question", "context"):
            if not getattr(FLAGS, name):
                raise app.UsageError(f"--do_serve_demo needs --{name}")
        return
    if not (FLAGS.do_train or FLAGS.do_predict or FLAGS.export_dir):
        raise app.UsageError("at least one of --do_train, --do_predict, --export_dir is needed")
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    if FLAGS.do_train and not FLAGS.train_file:
        raise app.UsageError("--do_train needs --train_file")
    if FLAGS.save_checkpoints_steps < 0:
        raise app.UsageError(
            f"--save_checkpoints_steps must be >= 0, got {FLAGS.save_checkpoints_steps}"
        )
    if FLAGS.do_predict and not FLAGS.predict_file:
        raise app.UsageError("--do_predict needs --predict_file")
    if FLAGS.max_seq_length <= FLAGS.max_query_length + 3:
        raise app.UsageError(
            f"--max_seq_length ({FLAGS.max_seq_length}) must exceed "
            f"--max_query_length + 3 ({FLAGS.max_query_length + 3})"
        )
    if FLAGS.mixed_precision == "fp16":
        raise app.UsageError("--mixed_precision=fp16 needs loss scaling, not implemented; use bf16")
    try:
        hparams = json.loads(FLAGS.optimizer_hparams)
    except json.JSONDecodeError as e:
        raise app.UsageError(f"--optimizer_hparams is not valid JSON: {e}") from None
    if not isinstance(hparams, dict):
        raise app.UsageError("--optimizer_hparams must be a JSON object")
    return hparams


def main(argv):
    del argv
    hparams = _validate_flags()
    if FLAGS.do_serve_demo:
        serve_demo(FLAGS.export_dir, FLAGS.question, FLAGS.context)
        return
    from bert import distribute

    if FLAGS.strategy == "mirrored":
        distribute.configure_cpu_devices(FLAGS.num_cpu_devices)

    import keras
    import tensorflow as tf
    import bert
    from bert import pretraining
    from data import squad, tokenization

    tf.io.gfile.makedirs(FLAGS.output_dir)
    # A fine-tuned checkpoint in output_dir is the model to predict / export with.
    fine_tuned = tf.train.latest_checkpoint(FLAGS.output_dir)
    init_checkpoint = FLAGS.init_checkpoint
    if not FLAGS.do_train and fine_tuned:
        init_checkpoint = fine_tuned
    config = resolve_config(init_checkpoint, FLAGS.bert_config_file)
    vocab_file = resolve_vocab_file(FLAGS.vocab_file, FLAGS.init_checkpoint or init_checkpoint)
    if FLAGS.max_seq_length > config.max_position_embeddings:
        raise ValueError(
            f"--max_seq_length {FLAGS.max_seq_length} exceeds the model's "
            f"max_position_embeddings {config.max_position_embeddings}"
        )
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=FLAGS.do_lower_case)

    keras.utils.set_random_seed(FLAGS.seed)
    pretraining.set_mixed_precision(FLAGS.mixed_precision)
    strategy = distribute.create_strategy(FLAGS.strategy, FLAGS.tpu, FLAGS.num_cpu_devices)
    replicas = strategy.num_replicas_in_sync
    for name in ("train_batch_size", "predict_batch_size"):
        if getattr(FLAGS, name) % replicas:
            raise ValueError(
                f"--{name}={getattr(FLAGS, name)} is not divisible by {replicas} replicas"
            )

    # Read and convert the data before building anything, so bad input fails fast.
    num_train_steps = 0
    if FLAGS.do_train:
        num_examples, num_features = prepare_train_data(
            FLAGS.train_file,
            tokenizer,
            FLAGS.output_dir,
            FLAGS.seed,
            FLAGS.max_seq_length,
            FLAGS.doc_stride,
            FLAGS.max_query_length,
        )
        num_train_steps = int(num_examples / FLAGS.train_batch_size * FLAGS.num_train_epochs)
        if num_train_steps < 1:
            raise ValueError(
                f"{num_examples} questions, batch {FLAGS.train_batch_size} and "
                f"{FLAGS.num_train_epochs} epochs make no training step"
            )
        num_warmup_steps = int(num_train_steps * FLAGS.warmup_proportion)
        logging.info(
            "Training: %d questions, %d features, batch %d, %d steps (%d warmup)",
            num_examples,
            num_features,
            FLAGS.train_batch_size,
            num_train_steps,
            num_warmup_steps,
        )
    if FLAGS.do_predict:
        eval_examples, eval_features = prepare_predict_data(
            FLAGS.predict_file,
            tokenizer,
            FLAGS.output_dir,
            FLAGS.max_seq_length,
            FLAGS.doc_stride,
            FLAGS.max_query_length,
        )

    with strategy.scope():
        model = bert.build_squad_model(config)
        if init_checkpoint:
            logging.info("Initialized the %s", initialize_from_checkpoint(model, init_checkpoint))
        else:
            logging.warning("No --init_checkpoint: the model starts from random weights")
        if FLAGS.do_train:
            optimizer, schedule = create_optimizer_and_schedule(
                FLAGS.optimizer,
                FLAGS.schedule,
                FLAGS.learning_rate,
                num_train_steps,
                num_warmup_steps,
                hparams,
            )
            optimizer.build(trainable_variables(model))

    step = 0
    if FLAGS.do_train:
        global_batch = FLAGS.train_batch_size
        # Every multi-worker worker saves (the save is collective); only the chief's copy is
        # the real one, the others go to a directory of their own.
        chief = distribute.is_chief(strategy)
        worker_dir = "" if chief else f"worker_tmp_{strategy.cluster_resolver.task_id}"
        # Model, optimizer (moments, step) and dropout generators, to resume after a kill.
        state = tf.train.CheckpointManager(
            tf.train.Checkpoint(
                model=model, optimizer=optimizer, dropout_seeds=bert.dropout_seed_states(model)
            ),
            os.path.join(FLAGS.output_dir, TRAIN_STATE, worker_dir),
            max_to_keep=1,
        )
        if state.latest_checkpoint:
            state.checkpoint.restore(state.latest_checkpoint).assert_existing_objects_matched()
            logging.info(
                "Resumed from %s at step %d", state.latest_checkpoint, optimizer.iterations.numpy()
            )
        resumed_steps = int(optimizer.iterations.numpy())

        def dataset_fn(ctx):
            return squad.build_squad_dataset(
                os.path.join(FLAGS.output_dir, "train.tf_record"),
                ctx.get_per_replica_batch_size(global_batch),
                FLAGS.max_seq_length,
                is_training=True,
                input_context=ctx,
                seed=FLAGS.seed,
            ).skip(resumed_steps)  # One batch per step on each input pipeline.

        dataset = strategy.distribute_datasets_from_function(dataset_fn)
        trainer = SquadTrainer(
            strategy,
            model,
            optimizer,
            schedule,
            global_batch,
            jit_compile=FLAGS.jit_compile,
            summary_dir=os.path.join(FLAGS.output_dir, "train"),
        )
        start = time.time()
        trainer.train(
            dataset,
            num_train_steps,
            FLAGS.iterations_per_loop,
            checkpoint_manager=state,
            save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        )
        step = int(optimizer.iterations.numpy())
        logging.info("Trained %d steps in %.1f s", step, time.time() - start)
        manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=model),
            os.path.join(FLAGS.output_dir, worker_dir),
            max_to_keep=1,
        )
        logging.info("Saved the fine-tuned model to %s", manager.save(checkpoint_number=step))
        # The config and vocab beside the checkpoint make output_dir a self-contained model dir.
        if chief:
            config.to_json_file(os.path.join(FLAGS.output_dir, FINE_TUNED_CONFIG))
        if chief and os.path.abspath(vocab_file) != os.path.abspath(
            os.path.join(FLAGS.output_dir, "vocab.txt")
        ):
            tf.io.gfile.copy(
                vocab_file, os.path.join(FLAGS.output_dir, "vocab.txt"), overwrite=True
            )
    elif fine_tuned:
        step = int(fine_tuned.rsplit("-", 1)[-1])

    if FLAGS.do_predict:
        scores = run_prediction(
            strategy,
            model,
            eval_examples,
            eval_features,
            FLAGS.output_dir,
            FLAGS.predict_file,
            FLAGS,
            step,
        )
        print(json.dumps(scores))

    if FLAGS.export_dir:
        from bert import squad_export

        squad_export.export_saved_model(
            model,
            vocab_file,
            FLAGS.export_dir,
            do_lower_case=FLAGS.do_lower_case,
            max_seq_length=FLAGS.max_seq_length,
            max_query_length=FLAGS.max_query_length,
            max_answer_length=FLAGS.max_answer_length,
        )
        logging.info("Exported the SavedModel to %s", FLAGS.export_dir)


if __name__ == "__main__":
    app.run(main)
