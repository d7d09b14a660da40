"""Studies built on pretraining runs: the quasi-random search and the batch-size scaling study.

`space`: search spaces and their quasi-random points; `search`: the Optuna study whose trials
are pretraining phases; `report`: learning curves and the results files; `scaling`: the
scaling study (one search per optimizer and batch size).
"""
