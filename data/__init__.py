import data.tf_startup  # noqa: F401  (first: quiet TensorFlow start-up for the CLIs)
