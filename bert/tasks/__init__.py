"""Tasks for the `Trainer`: what a model reads from a batch, its losses and metrics."""
