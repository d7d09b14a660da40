"""Training: one loop for every task, its parts, runtime options and experiment files.

trainer        `Trainer` and `TrainerOptions`: the parts below, composed
step           the compiled per-replica update, the loop of micro-steps, the eval step
precision      dtype policy, fp16 loss scaling, skipping non-finite updates
checkpointing  save, resume, start from another run; the workers' directories
inputs         iterators that skip used batches; length buckets (`BucketedInput`)
controller     the host loop and its stopping rules (SIGTERM: `Preempted`; NaN loss)
summaries      progress lines with ETA, TensorBoard, train/eval JSON logs
options        `RuntimeOptions` (strategy, precision, XLA, seed) and option flags
distribute     tf.distribute strategies
experiment     the experiment format of `configs/`; recipes: those from the papers
"""
