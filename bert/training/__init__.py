"""Training: the compiled step and host loop (`Trainer`), runtime options and strategies,
the experiment format of `configs/` and the recipes generated from the papers."""
