"""Length buckets: the chosen lengths against exhaustive search, the schedule's counts, the
bucketed SQuAD input against the unbucketed one, and the trainer's bucketed loop."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from bert.training import trainer as trainer_lib
from data import length_buckets, squad, squad_data


def exhaustive_best(lengths, max_length, num_buckets, multiple, min_count, bucket_cost=0.0):
    """Least padded tokens (plus `bucket_cost` per bucket after the first) over every set of at
    most `num_buckets` candidate lengths."""
    candidates = sorted({*range(multiple, max_length, multiple), max_length})
    best = None
    for k in range(1, num_buckets + 1):
        for chosen in itertools.combinations(candidates, k):
            if chosen[-1] < max(lengths):
                continue
            counts = np.bincount(
                length_buckets.assign_buckets(lengths, chosen), minlength=len(chosen)
            )
            if counts.min() < min_count:
                continue
            cost = length_buckets.padded_tokens(lengths, chosen) + (k - 1) * bucket_cost
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_chosen_lengths_pad_least_among_all_choices(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 200, size=int(rng.integers(20, 300)))
    min_count = int(rng.integers(1, 30))
    chosen = length_buckets.choose_bucket_lengths(
        lengths, 224, num_buckets=3, multiple=32, min_count=min_count
    )
    assert len(chosen) <= 3 and chosen == sorted(chosen) and chosen[-1] >= lengths.max()
    assert all(c % 32 == 0 or c == 224 for c in chosen)
    counts = np.bincount(length_buckets.assign_buckets(lengths, chosen), minlength=len(chosen))
    best = exhaustive_best(lengths, 224, 3, 32, min_count)
    if best is None:  # No choice fills every bucket: one bucket, the longest window's.
        assert chosen == [224 if lengths.max() > 192 else 32 * -(-lengths.max() // 32)]
    else:
        assert counts.min() >= min_count
        assert length_buckets.padded_tokens(lengths, chosen) == best


@pytest.mark.parametrize("seed", range(4))
def test_a_bucket_is_added_only_when_it_saves_more_than_its_compilation(seed):
    """With a cost per bucket after the first, the choice minimizes padded tokens plus that
    cost (exhaustive search); a cost above what any extra bucket saves leaves one bucket."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 200, size=int(rng.integers(50, 300)))
    one = [224 if lengths.max() > 192 else 32 * -(-lengths.max() // 32)]
    free = length_buckets.choose_bucket_lengths(lengths, 224, num_buckets=3)
    saving = length_buckets.padded_tokens(lengths, one) - length_buckets.padded_tokens(
        lengths, free
    )
    for bucket_cost in [0.1 * saving, 0.4 * saving]:
        chosen = length_buckets.choose_bucket_lengths(
            lengths, 224, num_buckets=3, bucket_cost=bucket_cost
        )
        cost = length_buckets.padded_tokens(lengths, chosen) + (len(chosen) - 1) * bucket_cost
        assert cost == pytest.approx(exhaustive_best(lengths, 224, 3, 32, 1, bucket_cost))
    assert length_buckets.choose_bucket_lengths(lengths, 224, 3, bucket_cost=saving + 1) == one


def test_compile_cost_is_that_many_steps_of_tokens_per_pass():
    """A compilation as long as 10 steps of 384 tokens, in a run of 500 steps of 16 over 2,000
    windows (4 passes): 10 * 16 * 384 tokens over the run, a quarter of that per pass."""
    cost = length_buckets.compile_cost_tokens(10, 384, num_windows=2000, num_steps=500)
    assert cost == pytest.approx(10 * 16 * 384 / 4)


def test_bucket_flags():
    assert length_buckets.parse_bucket_lengths("auto", 384) is None
    assert length_buckets.parse_bucket_lengths("", 384) == [384]
    assert length_buckets.parse_bucket_lengths("256, 128", 384) == [128, 256, 384]
    assert length_buckets.parse_bucket_lengths("128,384", 384) == [128, 384]
    for bad in ("12x", "0,128", "512"):
        with pytest.raises(ValueError, match="bucket lengths"):
            length_buckets.parse_bucket_lengths(bad, 384)
    with pytest.raises(ValueError, match="longer than the last bucket"):
        length_buckets.assign_buckets([100, 300], [128, 256])


def test_small_buckets_are_merged_into_a_neighbour():
    lengths = [10] * 5 + [100] * 2 + [200] * 9 + [250]
    # 64 has 5 < 6 windows -> merged up; then 128 has 7; 256 has 10.
    assert length_buckets.merge_small_buckets(lengths, [64, 128, 256], 6) == [128, 256]
    # The last bucket short of windows takes in the one below it.
    assert length_buckets.merge_small_buckets([10] * 8 + [300], [64, 384], 2) == [384]
    assert length_buckets.merge_small_buckets(lengths, [64, 128, 256], 100) == [256]


def test_schedule_draws_each_bucket_by_its_size_in_a_seeded_order():
    sizes, batch = [37, 120, 5, 64], 16
    epoch_steps = sum(sizes) // batch
    schedule = length_buckets.bucket_schedule(sizes, batch, 20 * epoch_steps, seed=7)
    counts = np.bincount(schedule, minlength=4)
    # Bucket b's batches after E epochs: floor(E * n_b / B), the fractions carried over.
    epochs = len(schedule) / (sum(sizes) / batch)
    for size, count in zip(sizes, counts):
        assert abs(count - epochs * size / batch) < 1.0 + 1e-9
    assert counts[2] > 0  # a bucket smaller than the batch is still drawn, rarely
    again = length_buckets.bucket_schedule(sizes, batch, 50, seed=7)
    np.testing.assert_array_equal(again, schedule[:50])  # longer runs extend shorter ones
    other = length_buckets.bucket_schedule(sizes, batch, 50, seed=8)
    assert not np.array_equal(other, again)
    assert sorted(other[:epoch_steps]) != list(other[:epoch_steps])  # shuffled, not sorted


def write_record(path, squad_file, count, vocab, is_training):
    """The first `count` questions of `squad_file` as features at 192 tokens in the TFRecord
    `path`; returns the features."""
    from data import tokenization

    tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
    examples = squad.read_examples(str(squad_file), is_training=is_training)[:count]
    features = squad.convert_examples_to_features(
        examples, tokenizer, max_seq_length=192, doc_stride=64, max_query_length=32
    )
    squad.write_features(features, path, is_training=is_training)
    return features


@pytest.fixture(scope="module")
def eval_record(tmp_path_factory, shared_data, minilm_vocab):
    """XQuAD's first 40 questions as prediction features at 192 tokens."""
    path = tmp_path_factory.mktemp("buckets") / "eval.tf_record"
    squad_file = shared_data / "squad" / "xquad-en-v1.1.json"
    return str(path), write_record(path, squad_file, 40, minilm_vocab, is_training=False)


def test_bucketed_prediction_input_holds_every_window_once_cut_to_its_bucket(eval_record):
    path, features = eval_record
    lengths = [sum(f.input_mask) for f in features]
    buckets = length_buckets.choose_bucket_lengths(lengths, 192, num_buckets=3, min_count=4)
    assert len(buckets) > 1
    seen = {}
    for bound in zip([0, *buckets[:-1]], buckets):
        dataset = squad.build_squad_dataset(path, 8, 192, is_training=False, length_bucket=bound)
        assert dataset.element_spec["input_ids"].shape.as_list() == [8, bound[1]]
        for batch in dataset.as_numpy_iterator():
            for i, uid in enumerate(batch["unique_ids"]):
                if uid != squad_data.PADDING_UNIQUE_ID:
                    assert uid not in seen
                    seen[uid] = (bound, {k: batch[k][i] for k in squad.MODEL_INPUT_KEYS})
    assert sorted(seen) == [f.unique_id for f in features]
    for feature, length in zip(features, lengths):
        (shorter, longest), row = seen[feature.unique_id]
        assert shorter < length <= longest
        np.testing.assert_array_equal(row["input_ids"], feature.input_ids[:longest])
        np.testing.assert_array_equal(row["input_mask"], feature.input_mask[:longest])


def test_prediction_batches_cut_to_their_longest_window(eval_record):
    """Without buckets (prediction without XLA) each batch is cut to its longest window: every
    window once, whole, and only padding cut."""
    path, features = eval_record
    by_id = {f.unique_id: f for f in features}
    dataset = squad.build_squad_dataset(path, 8, 192, is_training=False, cut_to_longest=True)
    assert dataset.element_spec["input_ids"].shape.as_list() == [8, None]
    seen, widths = [], set()
    for batch in dataset.as_numpy_iterator():
        width = batch["input_ids"].shape[1]
        assert width == batch["input_mask"].sum(axis=1).max()
        widths.add(width)
        for i, uid in enumerate(batch["unique_ids"]):
            if uid != squad_data.PADDING_UNIQUE_ID:
                seen.append(uid)
                feature = by_id[uid]
                np.testing.assert_array_equal(batch["input_ids"][i], feature.input_ids[:width])
                assert sum(feature.input_mask) <= width
    assert sorted(seen) == sorted(by_id)
    assert len(widths) > 1
    with pytest.raises(ValueError, match="prediction"):
        squad.build_squad_dataset(path, 8, 192, is_training=True, cut_to_longest=True)


def test_training_bucket_reads_its_file_once(tmp_path, shared_data, minilm_vocab):
    """A training bucket keeps its windows in memory after one pass over the file: a small
    bucket repeats many times to fill the shuffle buffer, and reading the file again for each
    repeat took a minute before a small bucket's first batch. Once the first batch is out the
    file can go, and later batches still bring every window of the bucket (and no other)."""
    path = tmp_path / "train.tf_record"
    squad_file = shared_data / "squad" / "train-v1.1-subset.json"
    features = write_record(path, squad_file, 60, minilm_vocab, is_training=True)
    lengths = [sum(f.input_mask) for f in features]
    bound = (0, sorted(lengths)[len(lengths) // 8])  # A small bucket: the shortest eighth.
    windows = {
        tuple(f.input_ids[: bound[1]])
        for f, n in zip(features, lengths)
        if bound[0] < n <= bound[1]
    }
    assert 4 <= len(windows) < len(features) / 4
    dataset = squad.build_squad_dataset(
        str(path), 4, 192, is_training=True, seed=1, length_bucket=bound, static_length=False
    )
    batches = iter(dataset)
    first = next(batches)
    path.unlink()
    seen = [
        tuple(row)
        for batch in [first, *itertools.islice(batches, 30)]
        for row in batch["input_ids"].numpy()
    ]
    assert set(seen) == windows


@pytest.mark.slow
def test_trainer_runs_each_update_on_its_scheduled_bucket_and_resumes(tmp_path):
    """A one-weight model whose gradient is 1000 x (batch length) + (batch number within its
    bucket): after SGD with rate 1 the weight is 1 - the sum over updates, which the schedule
    determines exactly; a run stopped at step 5 and resumed must reach the same weight (each
    bucket's iterator skipping just the batches its earlier draws used)."""
    import keras

    lengths = [8, 16, 24]

    class Probe(keras.Model):
        def __init__(self):
            super().__init__()
            self.w = self.add_weight(shape=(), initializer="ones", name="w")

        def call(self, inputs, training=False):
            x = tf.cast(inputs["x"], tf.float32)
            return self.w * (tf.cast(tf.shape(x)[1], tf.float32) * 1000.0 + x[:, 0])

    class Task:
        log_metrics = {}

        def model_inputs(self, batch):
            return batch

        def trainable_variables(self, model):
            return model.trainable_variables

        def global_counts(self, batch):
            return {}

        def losses(self, outputs, batch, counts, global_batch_size):
            return {"loss": tf.reduce_sum(outputs) / global_batch_size}

        def metrics(self, totals, steps):
            return {"loss": totals["loss"] / steps}

    def bucket_fn(index):
        def dataset_fn(ctx):  # Batch j of a bucket: [2, its length], all j.
            return tf.data.Dataset.range(1000).map(
                lambda j: {"x": tf.fill([2, lengths[index]], tf.cast(j, tf.int32))}
            )

        return dataset_fn

    num_steps = 12
    schedule = length_buckets.bucket_schedule([40, 60, 20], 4, num_steps, seed=3)
    assert len(set(schedule.tolist())) == 3
    expected = 1.0
    for step, bucket in enumerate(schedule):
        expected -= lengths[bucket] * 1000 + int(np.sum(schedule[:step] == bucket))

    def train(model_dir, steps):
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        with strategy.scope():
            model = Probe()
            model({"x": tf.zeros([2, 8], tf.int32)})
            optimizer = keras.optimizers.SGD(1.0)
        options = trainer_lib.TrainerOptions(
            model_dir=str(model_dir),
            num_train_steps=steps,
            train_batch_size=2,
            steps_per_loop=4,
            save_checkpoints_steps=5,
        )
        trainer = trainer_lib.Trainer(strategy, model, optimizer, 0.0, Task(), options)
        trainer.train(trainer_lib.BucketedInput([bucket_fn(i) for i in range(3)], schedule))
        return float(model.w.numpy())

    assert train(tmp_path / "straight", num_steps) == expected
    train(tmp_path / "resumed", 5)
    assert train(tmp_path / "resumed", num_steps) == expected
