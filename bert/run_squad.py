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
    that holds a fine-tuned checkpoint uses that checkpoint; eval_results.json then reports
    the checkpoint's step as global_step.
`--bert_config_file` overrides the config found in the directory; `--vocab_file` defaults to
the directory's `vocab.txt`; `--spm_model_file` takes a SentencePiece model instead (as
ALBERT's scripts; e.g. one learned by `data.learn_vocab --kind=sentencepiece`). A vocabulary
larger than the model's `vocab_size` is refused. The span head is new (truncated normal 0.02)
unless the checkpoint has one.

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
(see `bert.serving`). The library is `bert.tasks.squad`.

Several predict files (`--predict_file=xquad-en-v1.1.json,dev-v1.1.json`): each file's
eval.tf_record, predictions, eval_results.json and eval/ go to
output_dir/predictions/<file stem>/, and eval_results_by_file.json lists them all.

Length buckets (`--bucket_lengths`, default auto): windows are grouped by real length into at
most --num_buckets buckets (chosen from the data to minimize padded tokens, lengths multiples
of 32, each extra bucket only if its saving repays its compilation, --bucket_compile_steps;
or given, e.g. 128,192,256,384); a batch holds one bucket's windows padded to its
length, so each bucket is one static shape compiled once, the global batch is constant, and
every replica runs the same bucket at the same step (`data.length_buckets`: a schedule fixed
by --seed, so a resumed run skips exactly the used batches). `--bucket_lengths=` (empty) is
the original: every window padded to max_seq_length. The windowing itself (doc_stride) is the
original's either way. output_dir/train_buckets.json gives the buckets, windows per bucket and
padding fraction.

Prediction: eval.tf_record holds the windows sorted by length. Off TPU the prediction step
runs as a TF graph (not XLA: on a CPU it is as fast per step, and no length needs compiling)
and each batch is cut to its longest window; with --predict_jit_compile, and always on TPU, it
is XLA-compiled and reads the windows in length buckets as training does.

Fine-tuning spread (Nado et al. report mean and spread over fine-tuning seeds):
`--seeds=1,2,3` fine-tunes once per seed from the same --init_checkpoint, each run a complete
output_dir/seed_<n>/ as above (export in export_dir/seed_<n>/), then writes the mean, sample
standard deviation, min and max of EM and F1 per predict file to output_dir/seed_spread.json.
"""

import sys

from absl import app

from bert.tasks.squad import (  # noqa: F401 (re-exported: the names users reached here)
    FINE_TUNED_CONFIG,
    TRAIN_STATE,
    SquadOptions,
    SquadTask,
    create_optimizer_and_schedule,
    model_inputs,
    run,
    seed_spread,
    squad_loss,
    trainable_variables,
)
from bert.training import options as opts


def main(argv):
    del argv
    opts.exit_if_preempted(lambda: run(opts.from_flags(SquadOptions)))


if __name__ == "__main__":
    opts.define_flags(SquadOptions, module_name=sys.argv[0])
    app.run(main)
