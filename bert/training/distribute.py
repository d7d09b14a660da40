"""tf.distribute strategy creation for the training entry points."""

import tensorflow as tf

STRATEGIES = ("tpu", "multi_worker", "mirrored", "one_device")


def configure_cpu_devices(num_devices: int) -> None:
    """Splits the host CPU into `num_devices` logical devices (before TF starts running ops).

    This lets MirroredStrategy run real replicas on a CPU-only machine, the stand-in used
    here for a TPU slice.
    """
    if num_devices <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current and len(current) == num_devices:
        return
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices
    )


_TPU_STRATEGIES: dict = {}


def create_strategy(name: str, tpu: str = "", num_cpu_devices: int = 0) -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy called `name` (one of STRATEGIES).

    A TPU is connected and initialized once per process: runs that follow one another in a
    process (the trials of a search) share its strategy rather than resetting the TPU.
    """
    if name == "tpu":
        if tpu not in _TPU_STRATEGIES:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            _TPU_STRATEGIES[tpu] = tf.distribute.TPUStrategy(resolver)
        return _TPU_STRATEGIES[tpu]
    if name == "multi_worker":
        # Reads the cluster from TF_CONFIG, as on any multi-host GPU/CPU setup.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        configure_cpu_devices(num_cpu_devices)
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise ValueError(f"--strategy must be one of {STRATEGIES}, got {name!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints and summaries."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0)


def distribute_datasets(strategy: tf.distribute.Strategy, dataset_fn):
    """The per-replica batches of `dataset_fn(input_context)` under `strategy`.

    One device reads the dataset itself: tf.distribute's per-device iterator keeps a tf.data
    autotuning thread that deleting the iterator waits out (its sleep grows to a minute), which
    held up the end of every training run and every prediction pass by up to a minute.
    Otherwise `strategy.distribute_datasets_from_function`.
    """
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return dataset_fn(tf.distribute.InputContext(1, 0, 1))
    return strategy.distribute_datasets_from_function(dataset_fn)
