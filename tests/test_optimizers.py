"""Optimizers against NumPy implementations of the papers' equations, and the trainer contract."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimization

EXCLUDE = ["LayerNorm", "layer_norm", "bias"]
# name -> initial value. "zero/kernel" starts at ||w|| = 0 (trust ratio 1 case).
INITIAL = {
    "encoder/dense/kernel": np.linspace(-1.0, 1.5, 12).reshape(3, 4),
    "encoder/dense/bias": np.array([0.1, -0.2, 0.3, 0.0]),
    "encoder/LayerNorm/gamma": np.array([1.0, 0.9, 1.1, 1.2]),
    "zero/kernel": np.zeros((2, 3)),
}
NUM_STEPS = 4


def gradient_sequence(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [
        {n: scale * rng.normal(size=v.shape) for n, v in INITIAL.items()} for _ in range(NUM_STEPS)
    ]


def make_variables():
    return [tf.Variable(v.astype(np.float32), name=n) for n, v in INITIAL.items()]


def excluded(name, patterns):
    return any(re.search(p, name) for p in patterns)


def numpy_reference(rule, grads_seq, lrs, h):
    """Plain NumPy (float64) from the papers' equations, one variable at a time."""
    b1, b2, eps = h.get("beta_1", 0.9), h.get("beta_2", 0.999), h.get("epsilon", 1e-6)
    wd = h.get("weight_decay", 0.01 if rule in ("adamw", "lamb") else 0.0)
    bias_correction = h.get("bias_correction", True)
    inside = h.get("epsilon_inside_sqrt", False)
    mu = h.get("momentum", 0.9)
    phi_bounds = h.get("phi_bounds", h.get("trust_ratio_bounds"))
    ratio_bounds = h.get("ratio_bounds")
    decoupled = h.get("decoupled_weight_decay", False)
    clip = h.get("clipnorm")
    w = {n: v.astype(np.float64).copy() for n, v in INITIAL.items()}
    m = {n: np.zeros_like(v) for n, v in w.items()}
    v2 = {n: np.zeros_like(v) for n, v in w.items()}
    buf = {n: np.zeros_like(v) for n, v in w.items()}

    def trust(name, u):
        if excluded(name, EXCLUDE):
            return u
        w_norm, u_norm = np.linalg.norm(w[name]), np.linalg.norm(u)
        phi = w_norm if phi_bounds is None else min(max(w_norm, phi_bounds[0]), phi_bounds[1])
        ratio = phi / u_norm if w_norm > 0 and u_norm > 0 else 1.0
        if ratio_bounds is not None:
            ratio = min(max(ratio, ratio_bounds[0]), ratio_bounds[1])
        return ratio * u

    for t, (g, lr) in enumerate(zip(grads_seq, lrs), start=1):
        if clip:
            norm = np.sqrt(sum(np.sum(x**2) for x in g.values()))
            g = {n: x * clip / max(norm, clip) for n, x in g.items()}
        for n in w:
            decay = 0.0 if excluded(n, EXCLUDE) else wd
            if rule in ("adamw", "lamb"):
                m[n] = b1 * m[n] + (1 - b1) * g[n]
                v2[n] = b2 * v2[n] + (1 - b2) * g[n] ** 2
                m_hat = m[n] / (1 - b1**t) if bias_correction else m[n]
                v_hat = v2[n] / (1 - b2**t) if bias_correction else v2[n]
                r = m_hat / (np.sqrt(v_hat + eps) if inside else np.sqrt(v_hat) + eps)
                update = r + decay * w[n]
                if rule == "lamb":
                    update = trust(n, update)
            elif rule == "lars":  # Algorithm 1 of You et al. (2019)
                m[n] = mu * m[n] + (1 - mu) * (g[n] + decay * w[n])
                update = trust(n, m[n])
            elif rule == "lars_trust_before_momentum":
                scaled = trust(n, g[n] + decay * w[n])
                buf[n] = mu * buf[n] + scaled
                update = scaled + mu * buf[n] if h.get("nesterov") else buf[n]
            else:  # nesterov / momentum, decay as L2 (into the buffer) or decoupled
                d = g[n] if decoupled else g[n] + decay * w[n]
                buf[n] = mu * buf[n] + d
                update = d + mu * buf[n] if h.get("nesterov", rule == "nesterov") else buf[n]
                if decoupled:
                    update = update + decay * w[n]
            w[n] = w[n] - lr * update
    return w


def run_ours(rule, grads_seq, learning_rate, h, jit=False):
    variables = make_variables()
    opt = optimization.create_optimizer(rule, learning_rate, **h)
    opt.build(variables)

    def step(grads):
        opt.apply_gradients(zip(grads, variables))

    step = tf.function(step, jit_compile=True) if jit else tf.function(step)
    for g in grads_seq:
        step([tf.constant(g[n], tf.float32) for n in INITIAL])
    return {v.name.split(":")[0]: v.numpy() for v in variables}, opt


def schedule():
    return optimization.create_schedule(
        "warmup_poly",
        init_lr=0.0,
        peak_lr=0.05,
        final_lr=0.0,
        warmup_steps=2,
        total_steps=6,
        warmup_power=1,
        decay_power=1,
    )


def schedule_values():
    s = schedule()
    return [float(s(t)) for t in range(NUM_STEPS)]  # step t-1 for update t


def assert_close(ours, ref, rtol=2e-5, atol=1e-6):
    for n in INITIAL:
        np.testing.assert_allclose(ours[n], ref[n], rtol=rtol, atol=atol, err_msg=n)


CASES = [
    ("adamw", {}),
    ("adamw", {"bias_correction": False, "epsilon": 1e-6}),  # original BERT
    ("adamw", {"epsilon_inside_sqrt": True, "epsilon": 1e-4, "weight_decay": 0.1}),
    (
        "adamw",
        {"bias_correction": False, "epsilon_inside_sqrt": True, "epsilon": 1e-3, "clipnorm": 1.0},
    ),
    ("lamb", {}),
    ("lamb", {"bias_correction": False, "weight_decay": 0.1}),
    ("lamb", {"phi_bounds": [0.5, 1.0], "clipnorm": 1.0, "epsilon_inside_sqrt": True}),
    ("lamb", {"ratio_bounds": [0.1, 0.5], "phi_bounds": [0.0, 2.0]}),
    ("lars", {"weight_decay": 0.01}),
    ("lars", {"weight_decay": 0.01, "phi_bounds": [0.0, 2.0], "ratio_bounds": [0.1, 1.0]}),
    ("lars_trust_before_momentum", {"weight_decay": 0.01}),
    ("lars_trust_before_momentum", {"weight_decay": 0.01, "phi_bounds": [0, 2], "nesterov": True}),
    ("nesterov", {"weight_decay": 0.01, "momentum": 0.8}),
    ("nesterov", {"weight_decay": 0.01, "momentum": 0.8, "decoupled_weight_decay": True}),
    ("momentum", {"weight_decay": 0.0, "clipnorm": 0.5}),
    ("momentum", {"weight_decay": 0.05}),
    ("momentum", {"weight_decay": 0.05, "decoupled_weight_decay": True}),
]


@pytest.mark.parametrize("rule,h", CASES)
def test_trajectory_matches_numpy_reference(rule, h):
    grads = gradient_sequence(seed=len(h))
    ours, opt = run_ours(rule, grads, schedule(), h)
    ref = numpy_reference(rule, grads, schedule_values(), h)
    assert_close(ours, ref)
    assert int(opt.iterations.numpy()) == NUM_STEPS
    # The update really moved every variable with a nonzero effective rate.
    assert not np.allclose(ours["encoder/dense/kernel"], INITIAL["encoder/dense/kernel"])


def test_bias_correction_and_epsilon_placement_matter():
    """Guards against a reference that cannot tell the variants apart."""
    grads = gradient_sequence(seed=3, scale=1e-3)
    lrs = schedule_values()
    a = numpy_reference("adamw", grads, lrs, {})
    b = numpy_reference("adamw", grads, lrs, {"bias_correction": False})
    c = numpy_reference("adamw", grads, lrs, {"epsilon_inside_sqrt": True})
    k = "encoder/dense/kernel"
    assert not np.allclose(a[k], b[k], rtol=1e-4) and not np.allclose(a[k], c[k], rtol=1e-4)
    ours_c, _ = run_ours("adamw", grads, schedule(), {"epsilon_inside_sqrt": True})
    np.testing.assert_allclose(ours_c[k], c[k], rtol=2e-5, atol=1e-7)


def test_xla_compiled_step_matches():
    grads = gradient_sequence(seed=7)
    h = {"clipnorm": 1.0, "weight_decay": 0.05}
    ours, _ = run_ours("lamb", grads, schedule(), h, jit=True)
    assert_close(ours, numpy_reference("lamb", grads, schedule_values(), h))


def test_sparse_embedding_gradient_under_xla():
    """tf.gather gives IndexedSlices (with a repeated row); same result as the dense gradient."""
    table = np.arange(15, dtype=np.float32).reshape(5, 3) / 10
    ids = tf.constant([1, 3, 1])

    def train(sparse):
        var = tf.Variable(table, name="embeddings/word_embeddings")
        opt = optimization.create_optimizer("lamb", 0.1, weight_decay=0.01)

        @tf.function(jit_compile=True)
        def step():
            with tf.GradientTape() as tape:
                rows = tf.gather(var, ids) if sparse else tf.matmul(tf.one_hot(ids, 5), var)
                loss = tf.reduce_sum(tf.square(rows))
            grad = tape.gradient(loss, var)
            opt.apply_gradients([(grad, var)])

        step()
        step()
        return var.numpy()

    np.testing.assert_allclose(train(True), train(False), rtol=1e-6)
    assert not np.allclose(train(True), table)


def test_exclusions_skip_decay_and_trust_ratio():
    """Zero gradients: only decay moves weights. Excluded names must not move at all."""
    zeros = [{n: np.zeros_like(v) for n, v in INITIAL.items()}]
    lr, wd = 0.1, 0.2
    adamw, _ = run_ours("adamw", zeros, lr, {"weight_decay": wd})
    lamb, _ = run_ours("lamb", zeros, lr, {"weight_decay": wd})
    for n, w0 in INITIAL.items():
        if excluded(n, EXCLUDE):
            np.testing.assert_array_equal(adamw[n], w0.astype(np.float32))
            np.testing.assert_array_equal(lamb[n], w0.astype(np.float32))
    k = "encoder/dense/kernel"
    # AdamW: w <- w - lr * wd * w.
    np.testing.assert_allclose(adamw[k], INITIAL[k] * (1 - lr * wd), rtol=1e-6)
    # LAMB: u = wd * w, ratio ||w|| / ||wd w|| = 1 / wd, so w <- w - lr * w.
    np.testing.assert_allclose(lamb[k], INITIAL[k] * (1 - lr), rtol=1e-6)

    # With gradients and no decay: LayerNorm/bias get no trust ratio, the kernel does.
    grads = gradient_sequence(seed=11)[:1]
    lamb, _ = run_ours("lamb", grads, lr, {"weight_decay": 0.0})
    g = "encoder/LayerNorm/gamma"
    adam_step = grads[0][g] / (np.abs(grads[0][g]) + 1e-6)  # first bias-corrected Adam step
    np.testing.assert_allclose(lamb[g], INITIAL[g] - lr * adam_step, rtol=1e-5)
    step_k = INITIAL[k] - lamb[k]
    np.testing.assert_allclose(np.linalg.norm(step_k), lr * np.linalg.norm(INITIAL[k]), rtol=1e-5)


# -----------------------------------------------------------------------------
# Fidelity to the papers: LARS as Algorithm 1, L2 vs decoupled decay, phi vs ratio bounds


def test_lars_is_algorithm_1_worked_by_hand():
    """Two steps of You et al. (2019) Alg. 1, lr 0.1, b1 = momentum 0.5, wd 0.1.

    m = b1 m + (1 - b1)(g + wd x);  x -= lr phi(||x||)/||m|| m  (phi(z) = z).
    kernel: decay and trust ratio; LayerNorm: decay, no trust ratio; bias: neither.
      kernel 1: g + wd x = (3, 4), m = (1.5, 2), ratio 5 / 2.5 = 2, x = (2.7, 3.6)
      kernel 2: g + wd x = (-1.5, 1), m = (0, 1.5), ratio 4.5 / 1.5 = 3, x = (2.7, 3.15)
      gamma 1:  g + wd x = (0.5, 0), m = (0.25, 0), x = (0.975, 2)
      gamma 2:  g + wd x = (0, 0), m = (0.125, 0), x = (0.9625, 2)
      bias 1:   m = (0.1, -0.2), x = (0.99, -0.98)
      bias 2:   m = (0.05, -0.1) + (0.2, 0) = (0.25, -0.1), x = (0.965, -0.97)
    """
    names = ["dense/kernel", "LayerNorm/gamma", "dense/bias"]
    initial = [[3.0, 4.0], [1.0, 2.0], [1.0, -1.0]]
    grads = [
        [[2.7, 3.6], [0.4, -0.2], [0.2, -0.4]],
        [[-1.77, 0.64], [-0.0975, -0.2], [0.4, 0.0]],
    ]
    expected = [
        [[2.7, 3.6], [0.975, 2.0], [0.99, -0.98]],
        [[2.7, 3.15], [0.9625, 2.0], [0.965, -0.97]],
    ]
    variables = [tf.Variable(x, name=n) for x, n in zip(initial, names)]
    opt = optimization.create_optimizer(
        "lars",
        0.1,
        momentum=0.5,
        weight_decay=0.1,
        exclude_from_weight_decay=["bias"],
        exclude_from_layer_adaptation=["bias", "LayerNorm"],
    )
    for step_grads, step_expected in zip(grads, expected):
        opt.apply_gradients(zip([tf.constant(g) for g in step_grads], variables))
        for v, x in zip(variables, step_expected):
            np.testing.assert_allclose(v.numpy(), x, rtol=1e-6, atol=1e-7, err_msg=v.name)
    np.testing.assert_allclose(opt.slot(variables[0], "momentum").numpy(), [0.0, 1.5], atol=1e-6)


@pytest.mark.parametrize("rule", ["momentum", "nesterov"])
def test_l2_or_decoupled_weight_decay_closed_form(rule):
    """Zero gradients: only the decay acts, and (w, b) evolves linearly.

    L2 (the default; Nado et al. footnote 21): b' = mu b + wd w and
    w' = w - lr b' (heavy ball) or w - lr (wd w + mu b') (Nesterov), so
    (w, b)_t = A^t (w_0, 0). Decoupled: b stays 0 and w_t = (1 - lr wd)^t w_0.
    """
    lr, mu, wd, steps = 0.1, 0.9, 0.5, 3
    if rule == "momentum":
        a = np.array([[1 - lr * wd, -lr * mu], [wd, mu]])
    else:
        a = np.array([[1 - lr * wd * (1 + mu), -lr * mu * mu], [wd, mu]])
    l2_factor = np.linalg.matrix_power(a, steps)[0, 0]
    decoupled_factor = (1 - lr * wd) ** steps
    assert not np.isclose(l2_factor, decoupled_factor, rtol=1e-3)
    zeros = [{n: np.zeros_like(v) for n, v in INITIAL.items()}] * steps
    h = {"momentum": mu, "weight_decay": wd}
    l2, _ = run_ours(rule, zeros, lr, h)
    decoupled, _ = run_ours(rule, zeros, lr, dict(h, decoupled_weight_decay=True))
    k = "encoder/dense/kernel"
    np.testing.assert_allclose(l2[k], l2_factor * INITIAL[k], rtol=1e-5)
    np.testing.assert_allclose(decoupled[k], decoupled_factor * INITIAL[k], rtol=1e-5)
    for n, w0 in INITIAL.items():
        if excluded(n, EXCLUDE):
            np.testing.assert_array_equal(l2[n], w0.astype(np.float32))
            np.testing.assert_array_equal(decoupled[n], w0.astype(np.float32))


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (6.0, 20.0)])
@pytest.mark.parametrize(
    "rule,h,direction",
    [
        ("lars", {"momentum": 0.0}, [0.3, 0.4]),  # m = g
        ("lamb", {"epsilon": 0.0, "weight_decay": 0.0}, [1.0, 1.0]),  # first Adam step g/|g|
    ],
)
def test_phi_bounds_and_ratio_bounds_are_different_clamps(rule, h, direction, bounds):
    """One step from w = (3, 4), g = (0.3, 0.4): the two bounds give different steps.

    phi_bounds clamp ||w|| (You et al. 2019's phi); ratio_bounds clamp ||w|| / ||u||
    ("The Limit of the Batch Size": bound the trust ratio).
    """
    w0, direction = np.array([3.0, 4.0]), np.array(direction)
    lower, upper = bounds
    u_norm = np.linalg.norm(direction)
    ratios = {
        "phi_bounds": min(max(5.0, lower), upper) / u_norm,
        "ratio_bounds": min(max(5.0 / u_norm, lower), upper),
    }
    assert not np.isclose(ratios["phi_bounds"], ratios["ratio_bounds"])
    for name, ratio in ratios.items():
        w = tf.Variable(w0.astype(np.float32), name="dense/kernel")
        opt = optimization.create_optimizer(rule, 0.1, **h, **{name: list(bounds)})
        opt.apply_gradients([(tf.constant([0.3, 0.4]), w)])
        np.testing.assert_allclose(w.numpy(), w0 - 0.1 * ratio * direction, rtol=1e-5)


def test_trust_ratio_bounds_is_the_older_name_of_phi_bounds():
    grads = gradient_sequence(seed=12)
    for rule in ("lamb", "lars"):
        old, opt = run_ours(rule, grads, 0.05, {"trust_ratio_bounds": [0.0, 1.0]})
        new, _ = run_ours(rule, grads, 0.05, {"phi_bounds": [0.0, 1.0]})
        free, _ = run_ours(rule, grads, 0.05, {})
        assert opt.hparams["phi_bounds"] == (0.0, 1.0) and "trust_ratio_bounds" not in opt.hparams
        for n in INITIAL:
            np.testing.assert_array_equal(old[n], new[n])
        k = "encoder/dense/kernel"  # ||w|| > 1, so the bound acts
        assert not np.allclose(old[k], free[k])


def test_custom_exclusion_lists_and_keras_variable_paths():
    """Regexes are searched in Keras 3 `variable.path` (layer/variable)."""
    dense = keras.layers.Dense(2, name="pooler")
    norm = keras.layers.LayerNormalization(name="layer_norm")
    dense.build((None, 3))
    norm.build((None, 2))
    variables = dense.trainable_variables + norm.trainable_variables
    assert [v.path for v in variables] == [
        "pooler/kernel",
        "pooler/bias",
        "layer_norm/gamma",
        "layer_norm/beta",
    ]
    before = [v.numpy().copy() for v in variables]
    opt = optimization.create_optimizer(
        "adamw", 0.5, weight_decay=0.1, exclude_from_weight_decay=["^pooler/k"]
    )
    opt.apply_gradients([(tf.zeros_like(v), v) for v in variables])
    after = [v.numpy() for v in variables]
    np.testing.assert_allclose(after[0], before[0])  # kernel excluded by regex
    np.testing.assert_allclose(after[1], before[1] * (1 - 0.05))  # bias decays now
    np.testing.assert_allclose(after[2], before[2] * (1 - 0.05))  # gamma decays now


def test_gradient_accumulation_equals_one_big_batch():
    k = 3
    micro = gradient_sequence(seed=5)[:k]
    big = [{n: sum(m[n] for m in micro) / k for n in INITIAL}]
    h = {"clipnorm": 0.5, "weight_decay": 0.1}
    ours_big, _ = run_ours("lamb", big, 0.01, h)

    variables = make_variables()
    opt = optimization.create_optimizer("lamb", 0.01, gradient_accumulation_steps=k, **h)
    step = tf.function(lambda grads: opt.apply_gradients(zip(grads, variables)), jit_compile=True)
    for i, g in enumerate(micro):
        step([tf.constant(g[n], tf.float32) for n in INITIAL])
        if i < k - 1:  # Nothing applied before the k-th micro-batch.
            assert int(opt.iterations.numpy()) == 0
            np.testing.assert_array_equal(
                variables[0].numpy(), INITIAL["encoder/dense/kernel"].astype(np.float32)
            )
    assert int(opt.iterations.numpy()) == 1
    for v in variables:
        np.testing.assert_allclose(v.numpy(), ours_big[v.name.split(":")[0]], rtol=1e-5, atol=1e-7)
    # Accumulators are reset for the next global batch.
    for v in variables:
        np.testing.assert_array_equal(opt.slot(v, "accumulator").numpy(), 0.0)
    assert int(opt.micro_step.numpy()) == 0


def test_schedule_and_bias_correction_count_updates_not_micro_steps():
    k = 2
    micro = gradient_sequence(seed=4) + gradient_sequence(seed=6)  # 8 micro-steps, 4 updates
    averaged = [
        {n: (micro[2 * i][n] + micro[2 * i + 1][n]) / k for n in INITIAL} for i in range(NUM_STEPS)
    ]
    h = {"weight_decay": 0.1, "clipnorm": 1.0}
    ours, opt = run_ours("adamw", micro, schedule(), dict(h, gradient_accumulation_steps=k))
    assert int(opt.iterations.numpy()) == NUM_STEPS
    assert_close(ours, numpy_reference("adamw", averaged, schedule_values(), h))


# -----------------------------------------------------------------------------
# tf.distribute


class _OwnCollectiveKeysMirroredStrategy(tf.distribute.MirroredStrategy):
    """MirroredStrategy whose collective group key does not collide with other instances.

    Every MirroredStrategy on the same devices starts its collective group/instance
    keys at the same numbers, so a second instance in one process can hit
    "Shape mismatch in the collective instance 100". A distinct key base avoids it.
    """

    _collective_key_base = 7000


_STRATEGY = []


def two_cpu_strategy():
    """One 2-replica MirroredStrategy (default cross-device ops) shared by this module."""
    if not _STRATEGY:
        _STRATEGY.append(_OwnCollectiveKeysMirroredStrategy(["/cpu:0", "/cpu:1"]))
    return _STRATEGY[0]


def train_tiny_model(strategy, rule, h, steps=3, accumulation=1):
    """A Dense + LayerNorm model trained on a fixed global batch of 8."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * accumulation * 8, 5)).astype(np.float32)
    y = rng.normal(size=(steps * accumulation * 8, 2)).astype(np.float32)
    global_batch = 8
    with strategy.scope():
        model = keras.Sequential(
            [
                keras.Input((5,)),
                keras.layers.Dense(4, name="dense"),
                keras.layers.LayerNormalization(name="layer_norm"),
                keras.layers.Dense(2, name="head"),
            ]
        )
        opt = optimization.create_optimizer(
            rule, 0.05, gradient_accumulation_steps=accumulation, **h
        )
        opt.build(model.trainable_variables)

    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(xb) - yb)) / global_batch
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))

    @tf.function
    def step(xb, yb):
        strategy.run(replica_step, args=(xb, yb))

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch, drop_remainder=True)
    for xb, yb in strategy.experimental_distribute_dataset(dataset):
        step(xb, yb)
    return [v.numpy() for v in model.trainable_variables], int(opt.iterations.numpy())


@pytest.mark.parametrize(
    "rule,h,accumulation",
    [
        ("lamb", {"clipnorm": 1.0, "weight_decay": 0.01}, 1),
        ("adamw", {"clipnorm": 0.1, "bias_correction": False}, 2),
    ],
)
def test_mirrored_two_replicas_equals_one_device(rule, h, accumulation):
    one, it_one = train_tiny_model(tf.distribute.get_strategy(), rule, h, accumulation=accumulation)
    two, it_two = train_tiny_model(two_cpu_strategy(), rule, h, accumulation=accumulation)
    assert it_one == it_two == 3
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "replica_grads",
    [
        [[3.0, 4.0], [3.0, 4.0]],  # sum (6, 8), norm 10 -> (0.6, 0.8); per replica would give 2x
        [
            [3.0, 0.0],
            [-3.0, 0.1],
        ],  # sum (0, 0.1) is not clipped; per replica would leave (~0, 0.03)
    ],
)
def test_clipping_acts_on_the_reduced_global_gradient(replica_grads):
    strategy = two_cpu_strategy()
    with strategy.scope():
        w = tf.Variable([0.0, 0.0], name="w")
        opt = optimization.create_optimizer("momentum", 1.0, momentum=0.0, clipnorm=1.0)
        opt.build([w])
    per_replica = tf.constant(replica_grads, tf.float32)

    def replica_step():
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        opt.apply_gradients([(tf.gather(per_replica, rid), w)])

    tf.function(lambda: strategy.run(replica_step))()
    total = np.sum(replica_grads, axis=0)
    expected = -total * 1.0 / max(np.linalg.norm(total), 1.0)
    per_replica_clipped = -sum(np.array(g) / max(np.linalg.norm(g), 1.0) for g in replica_grads)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(expected, per_replica_clipped, atol=1e-3)


def test_one_device_strategy_whole_step_jit():
    """As the trainer runs on one device: the whole replica step compiled with XLA."""
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    grads = gradient_sequence(seed=2)
    h = {"clipnorm": 1.0}
    with strategy.scope():
        variables = make_variables()
        opt = optimization.create_optimizer("adamw", schedule(), **h)
        opt.build(variables)
    replica = tf.function(lambda gs: opt.apply_gradients(zip(gs, variables)), jit_compile=True)
    step = tf.function(lambda gs: strategy.run(replica, args=(gs,)))
    for g in grads:
        step([tf.constant(g[n], tf.float32) for n in INITIAL])
    ours = {v.name.split(":")[0]: v.numpy() for v in variables}
    assert_close(ours, numpy_reference("adamw", grads, schedule_values(), h))


# -----------------------------------------------------------------------------
# Checkpoints, config, errors


def test_checkpoint_round_trip_resumes_exactly(tmp_path):
    """Stop mid-accumulation, restore into a fresh optimizer, continue: same result."""
    grads = gradient_sequence(seed=9) * 2  # 8 micro-steps = 4 updates with k=2
    h = {"gradient_accumulation_steps": 2, "clipnorm": 1.0}

    def make():
        variables = make_variables()
        opt = optimization.create_optimizer("lamb", schedule(), **h)
        opt.build(variables)
        step = tf.function(lambda gs: opt.apply_gradients(zip(gs, variables)))
        return variables, opt, step

    def feed(step, gs):
        for g in gs:
            step([tf.constant(g[n], tf.float32) for n in INITIAL])

    variables, opt, step = make()
    feed(step, grads)
    straight = [v.numpy() for v in variables]

    variables, opt, step = make()
    feed(step, grads[:5])
    path = tf.train.Checkpoint(optimizer=opt, variables=variables).save(str(tmp_path / "ckpt"))
    assert int(opt.iterations.numpy()) == 2 and int(opt.micro_step.numpy()) == 1

    saved_variables = variables
    variables, opt2, step = make()
    tf.train.Checkpoint(optimizer=opt2, variables=variables).restore(path).assert_consumed()
    assert int(opt2.iterations.numpy()) == 2 and int(opt2.micro_step.numpy()) == 1
    for a, b in zip(saved_variables, variables):
        for s in ("m", "v", "accumulator"):
            np.testing.assert_array_equal(opt2.slot(b, s).numpy(), opt.slot(a, s).numpy())
    feed(step, grads[5:])
    for a, b in zip(straight, variables):
        np.testing.assert_array_equal(a, b.numpy())
    assert int(opt2.iterations.numpy()) == 4


def test_optimizer_config_round_trip():
    opt = optimization.create_optimizer(
        "lamb", schedule(), weight_decay=0.02, phi_bounds=[0.0, 10.0], ratio_bounds=[0, 5]
    )
    config = opt.get_config()
    clone = optimization.ChainOptimizer.from_config(config)
    assert clone.get_config() == config
    assert config["phi_bounds"] == (0.0, 10.0) and config["ratio_bounds"] == (0.0, 5.0)


@pytest.mark.parametrize(
    "name,hparams,needle",
    [
        ("adam", {}, "optimizer name"),
        ("adamw", {"momentum": 0.9}, "momentum"),
        ("adamw", {"beta_1": 1.0}, "beta_1"),
        ("adamw", {"epsilon": -1e-6}, "epsilon"),
        ("adamw", {"bias_correction": "yes"}, "bias_correction"),
        ("lamb", {"phi_bounds": [2.0, 1.0]}, "phi_bounds"),
        ("lars", {"ratio_bounds": [-1.0, 1.0]}, "ratio_bounds"),
        ("lamb", {"trust_ratio_bounds": [0, 1], "phi_bounds": [0, 1]}, "not both"),
        ("adamw", {"trust_ratio_bounds": [0, 1]}, "unknown.*trust_ratio_bounds"),
        ("lars", {"nesterov": True}, "nesterov"),
        ("nesterov", {"decoupled_weight_decay": 1}, "decoupled_weight_decay"),
        ("lamb", {"exclude_from_layer_adaptation": "bias"}, "exclude_from_layer_adaptation"),
        ("lamb", {"exclude_from_weight_decay": ["("]}, "exclude_from_weight_decay"),
        ("lars", {"clipnorm": 0.0}, "clipnorm"),
        ("nesterov", {"gradient_accumulation_steps": 0}, "gradient_accumulation_steps"),
    ],
)
def test_bad_hparams_raise_clear_errors(name, hparams, needle):
    with pytest.raises(ValueError, match=needle):
        optimization.create_optimizer(name, 1e-3, **hparams)


def test_skip_nonfinite_leaves_weights_moments_and_step_untouched():
    """With skip_nonfinite (fp16 loss scaling), an inf/NaN gradient changes nothing at all."""
    w = tf.Variable([[1.0, -2.0], [0.5, 3.0]], name="dense/kernel")
    optimizer = optimization.create_optimizer("lamb", 1e-2, skip_nonfinite=True)
    optimizer.build([w])
    good = tf.constant([[0.1, -0.2], [0.3, 0.4]])
    optimizer.apply_gradients([(good, w)])
    state = [v.numpy().copy() for v in optimizer.variables] + [w.numpy().copy()]
    for bad in (np.inf, np.nan):
        optimizer.apply_gradients([(tf.constant([[0.1, bad], [0.3, 0.4]]), w)])
        after = [v.numpy() for v in optimizer.variables] + [w.numpy()]
        for before, now in zip(state, after):
            np.testing.assert_array_equal(before, now)
    assert int(optimizer.iterations.numpy()) == 1
    optimizer.apply_gradients([(good, w)])
    assert int(optimizer.iterations.numpy()) == 2 and not np.array_equal(w.numpy(), state[-1])


# -----------------------------------------------------------------------------
# The parts: masked transforms, whole-gradient wrappers, stable checkpoint layout


def test_checkpoint_keys_and_slot_layout_are_stable(tmp_path):
    """Checkpoints written before the alias/wrappers split must keep loading.

    The layout the earlier optimizer wrote (read from its checkpoints): after
    `_iterations` and `_learning_rate`, `_variables/2...` hold the rule's slots
    ("m" for every variable, then "v"), then the accumulators; the micro-step
    counter is `_micro_step`.
    """
    variables = make_variables()
    opt = optimization.create_optimizer("lamb", 0.01, gradient_accumulation_steps=2)
    opt.build(variables)
    rng = np.random.default_rng(0)
    for _ in range(3):
        opt.apply_gradients(
            [(tf.constant(rng.normal(size=v.shape), tf.float32), v) for v in variables]
        )
    prefix = tf.train.Checkpoint(optimizer=opt).write(str(tmp_path / "ckpt"))
    n = len(variables)
    layout = {"_iterations": opt.iterations, "_micro_step": opt.micro_step}
    for j, slot in enumerate(("m", "v", "accumulator")):
        for i, v in enumerate(variables):
            layout[f"_variables/{2 + j * n + i}"] = opt.slot(v, slot)
    expected = {f"optimizer/{k}/.ATTRIBUTES/VARIABLE_VALUE" for k in layout}
    expected |= {"optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"}
    expected |= {f"optimizer/_trainable_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE" for i in range(n)}
    expected |= {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    assert {name for name, _ in tf.train.list_variables(prefix)} == expected
    for key, variable in layout.items():
        stored = tf.train.load_variable(prefix, f"optimizer/{key}/.ATTRIBUTES/VARIABLE_VALUE")
        np.testing.assert_array_equal(stored, variable.numpy(), err_msg=key)
    assert int(opt.micro_step.numpy()) == 1 and int(opt.iterations.numpy()) == 1
    assert opt.slot_names == ("m", "v", "accumulator")
    assert optimization.create_optimizer("adamw", 0.01).micro_step is None
    with pytest.raises(ValueError, match="momentum"):
        opt.slot(variables[0], "momentum")


def test_masked_decides_per_variable_path():
    tx = optimization.transforms
    decay = tx.masked(tx.add_decayed_weights(0.5), exclude=["bias$", "LayerNorm"])
    w, u = tf.constant([2.0, -4.0]), tf.constant([1.0, 1.0])
    step = tx.StepInfo(tf.constant(1.0), tf.constant(0.1))
    for path, expected in [
        ("dense/kernel", [2.0, -1.0]),
        ("dense/bias", [1.0, 1.0]),
        ("enc/LayerNorm/gamma", [1.0, 1.0]),
    ]:
        got, state = decay.for_variable(path).update(u, {}, w, step)
        np.testing.assert_allclose(got.numpy(), expected)
        assert state == {}
    with pytest.raises(ValueError, match="for_variable"):
        decay.update(u, {}, w, step)
    # A chain specializes its parts; an excluded trust ratio keeps the Adam direction.
    rule = optimization.alias.lamb(weight_decay=0.0)
    state = {"m": tf.zeros(2), "v": tf.zeros(2)}
    got, _ = rule.for_variable("x/bias").update(u, state, w, step)
    np.testing.assert_allclose(got.numpy(), [-0.1 / (1 + 1e-6)] * 2, rtol=1e-5)
    got, _ = rule.for_variable("x/kernel").update(u, state, w, step)
    np.testing.assert_allclose(np.linalg.norm(got.numpy()), 0.1 * np.linalg.norm(w), rtol=1e-6)


def test_wrappers_on_plain_tensors():
    wr = optimization.wrappers
    acc = wr.accumulate_gradients(2)
    assert (acc.slots, acc.counters) == (("accumulator",), ("micro_step",))
    state = {"accumulator": [tf.constant([1.0, 2.0])], "micro_step": tf.constant(0, tf.int64)}
    grads, apply, new = acc.update([tf.constant([3.0, 4.0])], state)
    assert not bool(apply) and int(new["micro_step"]) == 1
    np.testing.assert_allclose(new["accumulator"][0].numpy(), [4.0, 6.0])
    grads, apply, new = acc.update(
        [tf.constant([3.0, 4.0])], dict(state, micro_step=new["micro_step"])
    )
    assert bool(apply) and int(new["micro_step"]) == 0
    np.testing.assert_allclose(grads[0].numpy(), [2.0, 3.0])  # (1 + 3) / 2, (2 + 4) / 2
    np.testing.assert_array_equal(new["accumulator"][0].numpy(), [0.0, 0.0])

    grads, apply, _ = wr.skip_nonfinite().update([tf.constant([1.0, np.nan])], {})
    assert not bool(apply)
    np.testing.assert_array_equal(grads[0].numpy(), [0.0, 0.0])

    clip = wr.clip_by_global_norm(1.0)
    grads, apply, _ = clip.update([tf.constant([3.0]), tf.constant([4.0])], {})
    assert apply is None
    np.testing.assert_allclose([g.numpy()[0] for g in grads], [0.6, 0.8], rtol=1e-6)

    both = wr.chain(wr.skip_nonfinite(), clip)
    grads, apply, _ = both.update([tf.constant([30.0]), tf.constant([40.0])], {})
    assert bool(apply)
    np.testing.assert_allclose([g.numpy()[0] for g in grads], [0.6, 0.8], rtol=1e-6)


def test_defaults_are_the_documented_hyperparameters():
    common = {"clipnorm": None, "gradient_accumulation_steps": 1, "skip_nonfinite": False}
    adam = {
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-6,
        "bias_correction": True,
        "epsilon_inside_sqrt": False,
        "weight_decay": 0.01,
        "exclude_from_weight_decay": EXCLUDE,
    }
    trust = {"exclude_from_layer_adaptation": None, "phi_bounds": None, "ratio_bounds": None}
    sgd = {"momentum": 0.9, "weight_decay": 0.0, "exclude_from_weight_decay": EXCLUDE}
    l2 = {"decoupled_weight_decay": False}
    assert {
        "adamw": {**common, **adam},
        "lamb": {**common, **adam, **trust},
        "lars": {**common, **sgd, **trust},
        "lars_trust_before_momentum": {**common, **sgd, **trust, "nesterov": False},
        "momentum": {**common, **sgd, "nesterov": False, **l2},
        "nesterov": {**common, **sgd, "nesterov": True, **l2},
    } == optimization.DEFAULTS


def test_private_keras_and_tf_calls_only_in_keras_private():
    import pathlib

    private = re.compile(
        r"keras\.src|tf\.__internal__|_filter_empty_gradients|_check_variables_are_known"
        r"|_get_variable_index|_get_current_learning_rate|_distribution_strategy"
        r"|\._iterations\b|\._learning_rate\b|\._trainable_variables\b"
    )
    package = pathlib.Path(optimization.__file__).parent
    offenders = [
        f"{path.name}:{i}"
        for path in sorted(package.glob("*.py"))
        if path.name != "keras_private.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert offenders == []
    assert private.search((package / "keras_private.py").read_text())
