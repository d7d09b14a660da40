"""Tasks for the `Trainer`: what a model reads from a batch, its losses and metrics.

base               the `Task` protocol: the contract between a task and the Trainer
pretraining        masked-LM + next-sentence prediction (`PretrainingTask`)
pretraining_phase  one pretraining phase of an experiment: `PretrainingOptions`, `run_phase`
squad              SQuAD v1.1 fine-tuning, prediction and evaluation
"""
