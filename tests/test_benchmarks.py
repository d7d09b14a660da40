"""The benchmarks: their figures from stubbed timings, worked out by hand here, and every
benchmark run end to end on tiny sizes (slow; no speed is checked there)."""

import json
import os
import re
import types

import numpy as np
import pytest
import tensorflow as tf

import bert
from benchmarks import run, train_step
from bert.tasks import pretraining


def test_model_flops_match_the_kernels_of_the_built_model():
    """6 x (matmul kernel parameters) x tokens, counted from the real model, + attention."""
    config = train_step.benchmark_bert_config("tiny", dropout=0.0)
    model = bert.build_pretraining_model(config)
    s, p, h, n = (
        train_step.SEQ_LENGTH,
        train_step.NUM_PREDICTIONS,
        config.hidden_size,
        config.num_hidden_layers,
    )
    encoder_kernels = sum(
        int(w.numpy().size)
        for w in model.weights
        if "layer_" in w.path and w.path.endswith("kernel")
    )
    head_kernels = sum(
        int(w.numpy().size)
        for w in model.weights
        if "mlm_head" in w.path and w.path.endswith("kernel")
    )
    tied_table = config.vocab_size * h
    pooler_nsp = sum(
        int(w.numpy().size)
        for w in model.weights
        if ("pooler" in w.path or "nsp" in w.path) and w.path.endswith("kernel")
    )
    expected = (
        6 * s * encoder_kernels
        + 6 * n * 2 * s * s * h
        + 6 * p * (head_kernels + tied_table)
        + 6 * pooler_nsp
    )
    assert train_step.model_flops_per_sequence(config) == expected


def _dot_flops(hlo: str) -> int:
    """Sum of 2 * output size * contracted size over the dot ops of an HLO module."""
    shapes = {
        m.group(1): [int(d) for d in m.group(2).split(",") if d]
        for m in re.finditer(r"%([\w.\-]+) = \w+\[([\d,]*)\]", hlo)
    }
    total = 0
    for line in hlo.splitlines():
        if " dot(" not in line:
            continue
        out = re.search(r"= \w+\[([\d,]*)\]", line).group(1)
        lhs = re.search(r"dot\((?:\w+\[[\d,]*\](?:\{[\d,]*\})? )?%([\w.\-]+)", line).group(1)
        contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", line).group(1)
        size = np.prod([shapes[lhs][int(c)] for c in contracting.split(",")])
        total += 2 * int(np.prod([int(d) for d in out.split(",") if d])) * int(size)
    return total


def test_executed_flops_match_the_dots_xla_compiles():
    """The project's forward pass, compiled by XLA, runs exactly the matmul FLOPs
    the executed-FLOP formula gives (1/3 of training FLOPs): the last layer
    really works on [CLS] + masked rows only, and the model count is higher."""
    tf.random.set_seed(0)  # the compiler-IR call needs one under TF_DETERMINISTIC_OPS
    config = train_step.benchmark_bert_config("tiny", dropout=0.0)
    model = bert.build_pretraining_model(config)
    batch = train_step.random_batch(2)
    inputs = {k: tf.constant(batch[k]) for k in pretraining.MODEL_INPUTS}
    forward = tf.function(lambda x: model(x, training=False), jit_compile=True)
    flops = _dot_flops(forward.experimental_get_compiler_ir(inputs)(stage="hlo"))
    rows = train_step.NUM_PREDICTIONS + 1
    executed = train_step.model_flops_per_sequence(config, last_layer_rows=rows)
    assert flops * 3 == 2 * executed
    assert executed < train_step.model_flops_per_sequence(config)
    seq = train_step.SEQ_LENGTH
    assert train_step.model_flops_per_sequence(
        config, last_layer_rows=seq
    ) == train_step.model_flops_per_sequence(config)


def test_random_batch_is_a_valid_pretraining_batch():
    batch = train_step.random_batch(4)
    lengths = batch["input_mask"].sum(1)
    for row, positions in enumerate(batch["masked_lm_positions"]):
        assert len(set(positions)) == train_step.NUM_PREDICTIONS
        assert positions.min() >= 1 and positions.max() < lengths[row] - 1
    assert (batch["input_ids"][batch["input_mask"] == 0] == 0).all()


# -----------------------------------------------------------------------------------------------
# train_step's figures from stubbed workers


class _StubWorker:
    """A `train_step.Worker` that answers with scripted measurements instead of training."""

    # Seconds of each timed 5-step round, and each worker's GEMM peaks (FLOP/s).
    ROUNDS = {"project": [2.0, 1.0, 4.0], "keras_hub": [4.0, 4.0, 5.0]}
    GEMM = {
        "project": {"eager_tf": 5e10, "xla": 8e10, "peak": 8e10},
        "keras_hub": {"eager_tf": 6e10, "xla": 1e11, "peak": 1e11},
    }
    RSS = {"project": 2**30, "keras_hub": 2**31}

    def __init__(self, kind, **kwargs):
        self.kind, self.num_params = kind, 123
        self._rounds = iter(self.ROUNDS[kind])

    def call(self, command, *args):
        if command == "run":
            return 99.0 if args[0] == 1 else next(self._rounds)  # 1 step: the warm-up calls
        return {"gemm": self.GEMM, "rss": self.RSS}[command][self.kind]

    def close(self):
        pass


def test_train_step_figures_from_stubbed_timings(monkeypatch):
    monkeypatch.setattr(train_step, "Worker", _StubWorker)
    row = train_step.benchmark_config("tiny", rounds=3, steps_per_round=5, log=lambda *_: None)
    project, peer = row["results"]["project"], row["results"]["keras_hub"]
    # Rounds of 5 steps of batch 4 = 20 sequences: 20/2, 20/1, 20/4 and 20/4, 20/4, 20/5 seq/s.
    assert project["all_sequences_per_second"] == [10.0, 20.0, 5.0]
    assert peer["all_sequences_per_second"] == [5.0, 5.0, 4.0]
    assert (project["sequences_per_second"], peer["sequences_per_second"]) == (10.0, 5.0)
    assert (project["step_seconds"], peer["step_seconds"]) == (0.4, 0.8)
    assert row["ratio"] == 2.0
    # BERT-Tiny (L2, H128, I512, V30522), S128, P20, FLOPs of a sequence by the docstring's terms:
    # a layer 6 * (128 * (4*128^2 + 2*128*512) + 2*128^2*128) = 176,160,768, twice; the masked
    # LM 6*20*(128^2 + 128*30522) = 470,784,000; pooler and NSP 6*(128^2 + 2*128) = 99,840.
    assert row["model_flops_per_sequence"] == 823_205_376
    # The project's last layer on 21 rows: 6 * (2*128*128^2 + 21*(2*128^2 + 2*128*512)
    # + 2*21*128*128) = 49,938,432 instead of 176,160,768.
    assert project["executed_flops_per_sequence"] == 696_983_040
    assert peer["executed_flops_per_sequence"] == 823_205_376
    assert row["gemm_peak_flops"] == 1e11  # the best of both workers
    assert project["mfu"] == pytest.approx(0.0823205376)  # 10 * 823,205,376 / 1e11
    assert project["hfu"] == pytest.approx(0.069698304)
    assert peer["mfu"] == peer["hfu"] == pytest.approx(0.0411602688)
    assert project["model_tflops_per_second"] == pytest.approx(0.00823205376)
    assert (project["peak_rss_bytes"], peer["num_params"]) == (2**30, 123)
    lines = train_step.to_markdown([row]).splitlines()
    assert (
        "| tiny (L2/H128) | 4 | project | 10.00 | 0.400 | 0.008 | 8.2% | 7.0% | 1.00 | 2.00x |"
        in lines
    )
    assert (
        "| tiny (L2/H128) | 4 | keras_hub | 5.00 | 0.800 | 0.004 | 4.1% | 4.1% | 2.00 |  |" in lines
    )
    assert any(
        line.startswith(
            "- tiny: 0.82 model GFLOP/sequence (0.70 executed by the project); fp32 GEMM peak "
            "100 GFLOP/s (XLA 100, TF 60); 3 interleaved rounds of 5 steps;"
        )
        for line in lines
    )


# -----------------------------------------------------------------------------------------------
# Every benchmark end to end on tiny sizes


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    results = run.run_all(
        configs=("tiny",),
        rounds=2,
        steps_per_round=1,
        tiny=True,
        isolate=False,
        log=lambda *_: None,
    )
    out = tmp_path_factory.mktemp("bench")
    markdown = run.write_results(results, str(out))
    return results, markdown, out


@pytest.mark.slow
def test_every_benchmark_runs_and_is_written(tiny_results):
    results, markdown, out = tiny_results
    assert set(results["benchmarks"]) == set(run.ALL)
    assert (
        json.loads((out / "results.json").read_text())["benchmarks"].keys()
        == results["benchmarks"].keys()
    )
    assert (out / "results.md").read_text() == markdown
    for word in (
        "KerasHub",
        "MFU",
        "Optimizer step",
        "Where the step time goes",
        "Pretraining-data",
        "SQuAD",
        "input pipeline",
    ):
        assert word.lower() in markdown.lower(), word
    assert results["versions"]["keras-hub"] != "not installed"


@pytest.mark.slow
def test_train_step_row_of_a_tiny_run(tiny_results):
    results, _, _ = tiny_results
    (row,) = results["benchmarks"]["train_step"]
    project, peer = row["results"]["project"], row["results"]["keras_hub"]
    # Both implementations build the same architecture (KerasHub's MLM head adds no
    # parameters beyond ours; both tie the output matrix): equal parameter counts.
    assert project["num_params"] == peer["num_params"]
    for r in (project, peer):
        assert len(r["all_sequences_per_second"]) == 2 and r["peak_rss_bytes"] > 2**20
        assert 0 < r["hfu"] <= r["mfu"]
    assert peer["executed_flops_per_sequence"] == row["model_flops_per_sequence"]
    assert project["executed_flops_per_sequence"] < row["model_flops_per_sequence"]
    ratio = results["benchmarks"]["input_pipeline"][0]
    assert "ratio_to_trainer" not in ratio  # no mini trainer row in this run


@pytest.mark.slow
def test_step_profile_breaks_a_tiny_step_down(tiny_results):
    """Stages and XLA-op parts of a tiny step (profiled in a fresh process: XLA flags)."""
    from benchmarks import step_profile

    result = tiny_results[0]["benchmarks"]["step_profile"]
    stages = {r["stage"]: r["seconds"] for r in result["stages"]}
    assert len(stages) == 6 and all(s > 0 for s in stages.values())
    parts = {r["part"]: r["share"] for r in result["xla_ops"]}
    # Every matmul family of the model shows up.
    for part in ("vocabulary projection (matmuls)", "attention matmuls", "other matmuls"):
        assert parts.get(part, 0) > 0, (part, parts)
    assert "| LayerNorm |" in step_profile.to_markdown(result)


def test_step_profile_parts_from_stubbed_profiler_events():
    from benchmarks import step_profile as sp

    info = {
        "dot.1": "%dot.1 = f32[8,8] dot(%a, %b)",
        "fusion.2": 'op_type="Mul" op_name="layer_0/output_layer_norm/mul" %fusion.2 = f32[8]',
    }
    events = [  # (name, picoseconds) over 2 steps; the ones not in `info` are not XLA thunks
        ("dot.1", 3 * 10**9),
        ("fusion.2", 10**9),
        ("dot.1", 2 * 10**9),
        ("ExecutorState::Process", 50 * 10**9),
    ]
    rows = sp.parts_per_step(events, info, steps=2)
    # Matmuls 5 ms over 2 steps = 2.5 ms a step, LayerNorm 0.5 ms: 5/6 and 1/6 of 3 ms.
    assert [r["part"] for r in rows] == ["other matmuls", "LayerNorm"]
    assert [r["ms_per_step"] for r in rows] == pytest.approx([2.5, 0.5])
    assert [r["share"] for r in rows] == pytest.approx([5 / 6, 1 / 6])


def test_step_profile_categories_of_hlo_lines():
    from benchmarks import step_profile as sp

    cases = {
        '%MatMul.116 = f32[640,30522]{1,0} dot(%a, %b), metadata={op_type="MatMul" '
        'op_name="bert_pretraining_1/mlm_head_1/MatMul"}': "vocabulary projection (matmuls)",
        "%MatMul_1.64 = f32[32,4,128,128]{3,2,1,0} dot(%q, %k), lhs_batch_dims={0,1}, "
        'metadata={op_name="bert_encoder_1/layer_0_1/MatMul_1"}': "attention matmuls",
        '%MatMul.90 = f32[4096,1024]{1,0} dot(%x, %w), metadata={op_type="MatMul" '
        'op_name="bert_encoder_1/layer_0_1/intermediate_1/Tensordot/MatMul"}': "other matmuls",
        "%wrapped_reduce-window.3 = f32[32,128,8]{2,1,0} fusion(%p)": (
            "reductions (gradient sums, norms, row max)"
        ),
        '%y = f32[32,128,256] fusion(%x), metadata={op_type="Mul" '
        'op_name="bert_pretraining_1/layer_1_1/output_layer_norm_1/mul"}': "LayerNorm",
        '%x = f32[8] fusion(%a), metadata={op_type="Erfc" op_name="layer_0/Gelu/Erfc"}': "GELU",
    }
    for line, part in cases.items():
        assert sp.categorize(line) == part, line


# squad_peer: the parts that need neither torch nor a training run.


def test_squad_peer_steady_state_leaves_out_the_warmup_steps():
    from benchmarks import squad_peer

    # Host calls of 5 steps, batch 16; the first one carries the compilation.
    log = [
        {"step": 5, "step_time": 10.0},
        {"step": 10, "step_time": 0.5},
        {"step": 15, "step_time": 0.8},
        {"step": 20, "step_time": 0.4},
    ]
    records = squad_peer.project_records(log, batch_size=16)
    assert [r["num_steps"] for r in records] == [5, 5, 5, 5]
    summary = squad_peer.rate_summary(records, total_steps=20, warmup_fraction=0.2)
    assert summary["features"] == 320
    assert summary["features_per_second"] == pytest.approx(320 / (5 * 11.7))
    # 20% of 20 steps: the call of steps 1-5 goes, the one starting at step 6 stays.
    steady = summary["steady"]
    assert steady["first_step"] == 6
    assert steady["features"] == 240
    assert steady["features_per_second"] == pytest.approx(240 / (5 * 1.7))
    # 30%: step 6 is inside the warmup, so that call goes too.
    later = squad_peer.steady_rate(records, total_steps=20, warmup_fraction=0.3)
    assert later["first_step"] == 11
    assert later["features_per_second"] == pytest.approx(160 / (5 * 1.2))


def _side(train_rate, train_steady, predict_rate, predict_steady):
    return {
        "train": {
            "features_per_second": train_rate,
            "steady": {"features_per_second": train_steady},
            "steps": 80,
            "features": 1280,
            "windows": 650,
            "padded_tokens_per_feature": 384,
            "real_tokens_per_feature": 170.0,
            "padding_fraction": 0.1,
            "seconds": 100.0,
            "host_calls_seconds": 90.0,
            "seconds_by_part": {"forward": 3.0, "backward": 1.0},
        },
        "predict": {
            "features_per_second": predict_rate,
            "steady": {"features_per_second": predict_steady},
            "features": 330,
            "seconds": 20.0,
        },
        "exact_match": 50.0,
        "f1": 60.0,
        "attention": "sdpa",
        "train_log": [{"step": 5, "step_time": 2.0}],
        "process_start": 0.0,
        "process_end": 10.0,
    }


def test_squad_peer_table_shows_project_over_peer():
    from benchmarks import squad_peer

    project, peer = _side(12.0, 15.0, 30.0, None), _side(8.0, 10.0, 40.0, 50.0)
    ratios = squad_peer.summarize(project, peer)
    assert ratios == {
        "train_end_to_end": pytest.approx(1.5),
        "train_steady": pytest.approx(1.5),
        "predict_end_to_end": pytest.approx(0.75),
        "predict_steady": None,  # A side without the number gives no ratio.
    }
    results = {
        "project": project,
        "peer": peer,
        "ratios": ratios,
        "versions": {"tensorflow": "2.21.0", "torch": "2.13.0"},
        "machine": {"cpu_count": 2, "platform": "Linux"},
        "load_average_start": (0.1, 0.2, 0.3),
        "load_average_end": (1.0, 1.0, 1.0),
        "seconds": 600.0,
        "settings": {
            "num_questions": 640,
            "num_predict_questions": 320,
            "warmup_fraction": 0.2,
            "iterations_per_loop": 5,
            "project_bucket_lengths": None,
            "cores": {"project": 1, "peer": 0},
        },
    }
    markdown = squad_peer.to_markdown(results)
    rows = {line.split(" | ")[0]: line for line in markdown.splitlines() if line.startswith("|")}
    train_row = next(v for k, v in rows.items() if k.startswith("| training features/s, end"))
    assert train_row.endswith("| 12.0 | 8.0 | 1.50 |")
    steady_row = next(v for k, v in rows.items() if "prediction features/s, steady" in k)
    assert steady_row.endswith("| n/a | 50.0 | n/a |")
    assert "no --bucket_lengths flag" in markdown and "torch 2.13.0" in markdown


def test_squad_peer_passes_bucket_lengths_only_when_given():
    from benchmarks import squad_peer

    def buckets(value):
        argv = squad_peer.project_argv("m", "t.json", "p.json", "out", 5, value)
        return [a for a in argv if a.startswith("--bucket_lengths")]

    assert buckets(None) == []
    assert buckets("") == ["--bucket_lengths="]
    assert buckets("auto") == ["--bucket_lengths=auto"]


def test_squad_peer_labels_windows_as_run_qa():
    from benchmarks import squad_peer

    # [CLS] who [SEP] the cat sat [SEP] over the context "the cat sat".
    offsets = [(0, 0), (0, 3), (0, 0), (0, 3), (4, 7), (8, 11), (0, 0)]
    sequence_ids = [None, 0, None, 1, 1, 1, None]
    assert squad_peer.label_window(offsets, sequence_ids, 4, 7) == (4, 4)  # "cat"
    assert squad_peer.label_window(offsets, sequence_ids, 4, 11) == (4, 5)  # "cat sat"
    assert squad_peer.label_window(offsets, sequence_ids, 0, 3) == (3, 3)  # "the"
    # A later window whose context starts at "cat": "the" is not in it -> [CLS].
    later = [(0, 0), (0, 3), (0, 0), (4, 7), (8, 11), (0, 0)]
    assert squad_peer.label_window(later, [None, 0, None, 1, 1, None], 0, 3) == (0, 0)
    assert squad_peer.label_window(later, [None, 0, None, 1, 1, None], 8, 11) == (4, 4)


def test_squad_peer_best_answer_keeps_to_the_context_and_the_length_limit():
    from benchmarks import squad_peer

    context = "the cat sat on the mat"
    offsets = [None, None, None, (0, 3), (4, 7), (8, 11), (12, 14), (15, 18), (19, 22), None]
    start = np.zeros(10, np.float32)
    end = np.zeros(10, np.float32)
    start[1], end[1] = 9.0, 9.0  # A question token: not an answer.
    start[3], end[8] = 6.0, 5.0  # "the ... mat" (6 tokens) 11, "the cat" 10
    start[4], end[4] = 4.0, 4.0  # "cat" 8
    windows = [(start, end, offsets)]
    assert squad_peer.best_answer(context, windows) == "the cat sat on the mat"
    assert squad_peer.best_answer(context, windows, max_answer_length=5) == "the cat"
    assert squad_peer.best_answer(context, windows, max_answer_length=1) == "cat"
    # A second window with a better span wins.
    start2, end2 = np.zeros(10, np.float32), np.zeros(10, np.float32)
    start2[5], end2[5] = 8.0, 8.0
    assert squad_peer.best_answer(context, windows + [(start2, end2, offsets)]) == "sat"


def test_squad_peer_subset_keeps_the_first_questions(tmp_path):
    from benchmarks import squad_peer

    def paragraph(ids):
        return {"context": "c", "qas": [{"id": i, "question": "q", "answers": []} for i in ids]}

    source = tmp_path / "in.json"
    source.write_text(
        json.dumps(
            {
                "version": "1.1",
                "data": [
                    {"title": "a", "paragraphs": [paragraph(["1", "2"]), paragraph(["3"])]},
                    {"title": "b", "paragraphs": [paragraph(["4", "5"]), paragraph(["6"])]},
                ],
            }
        )
    )
    out = tmp_path / "out.json"
    assert squad_peer.write_squad_subset(str(source), 4, str(out)) == 4
    assert [q["id"] for q in squad_peer.read_questions(str(out))] == ["1", "2", "3", "4"]
    assert squad_peer.write_squad_subset(str(source), 100, str(out)) == 6


def test_squad_step_rates_figures_from_a_stubbed_clock(minilm_dir, monkeypatch):
    """One process's rows, run here with a scripted clock (and no core pinning)."""
    from benchmarks import squad_step_rates

    # Durations of the calls in order, at length 16 then 32: the first call, then 3 timed.
    durations = [2.0, 0.5, 0.2, 0.4, 1.0, 0.8, 0.8, 1.6]
    stamps, now = [], 0.0
    for seconds in durations:
        stamps += [now, now + seconds]
        now += seconds + 10.0
    monkeypatch.setattr(
        squad_step_rates, "time", types.SimpleNamespace(perf_counter=iter(stamps).__next__)
    )
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cores: None)
    monkeypatch.setattr(tf.config.threading, "set_intra_op_parallelism_threads", lambda n: None)
    monkeypatch.setattr(train_step, "gemm_peak_flops", lambda size, repeats: {"peak": 5e10})
    rows = squad_step_rates.step_rates(0, str(minilm_dir), "forward", "fp32", False, [16, 32], 3)
    # Median steps 0.4 s and 0.8 s; 16 windows of 16 and of 32 tokens: 256/0.4 = 512/0.8 = 640/s.
    # MiniLM-L6 (H384, I1536): 6 layers x (4 x 384^2 + 2 x 384 x 1536) = 10,616,832 matmul
    # weights, 2 FLOPs each a token, + 4 x length x 384 x 6 of attention: 21,381,120 FLOPs a
    # token at 16, 21,528,576 at 32.
    assert [r["length"] for r in rows] == [16, 32]
    assert [r["first_call_seconds"] for r in rows] == pytest.approx([2.0, 1.0])
    assert [r["step_seconds"] for r in rows] == pytest.approx([0.4, 0.8])
    assert [r["tokens_per_second"] for r in rows] == pytest.approx([640.0, 640.0])
    assert [r["model_flops_per_second"] for r in rows] == pytest.approx(
        [21_381_120 * 640, 21_528_576 * 640]
    )
    assert all(
        (r["part"], r["precision"], r["xla"], r["core_gemm_peak_flops"])
        == ("forward", "fp32", False, 5e10)
        for r in rows
    )


@pytest.mark.slow
def test_squad_step_rates_time_xla_and_the_tf_graph_on_one_core_each(minilm_dir):
    """Both builds of MiniLM's forward run side by side (a process per core), a row per
    length and build, and the table shows each length once."""
    from benchmarks import squad_step_rates

    results = squad_step_rates.run(
        str(minilm_dir), [16, 32], ["fp32"], ["forward"], steps=2, cores=[0, 1]
    )
    rows = results["rows"]
    assert sorted((r["xla"], r["length"]) for r in rows) == [
        (False, 16),
        (False, 32),
        (True, 16),
        (True, 32),
    ]
    for r in rows:
        assert r["step_seconds"] > 0 and r["model_flops_per_second"] > r["tokens_per_second"] > 0
        assert r["core_gemm_peak_flops"] > 1e9
    markdown = squad_step_rates.to_markdown(results)
    assert len([line for line in markdown.splitlines() if line.startswith("| forward")]) == 2


# -----------------------------------------------------------------------------------------------
# optimizer_step


@pytest.mark.slow
def test_optimizer_step_runs_on_tiny_variables():
    from benchmarks import optimizer_step

    rows = optimizer_step.run_benchmark(optimizer_step.tiny_shapes(), num_steps=2, warmup_steps=1)
    assert {r["optimizer"] for r in rows} >= {
        "ours adamw",
        "keras AdamW",
        "ours lamb",
        "keras Lamb",
    }
    assert all(r["ms_per_step"] > 0 for r in rows)


def test_trial_cost_projects_a_cell_from_measured_trials():
    """Phase path: every trial compiles; cell path: each worker compiles once, workers run
    side by side."""
    from benchmarks import trial_cost

    phase = {"variant": "phase path", "processes": 1, "trials": 4}
    phase.update(compile_seconds=40.0, trial_seconds=160.0)  # 10 s compile + 30 s steps each
    assert trial_cost.cell_seconds(phase, 12) == pytest.approx(12 * 40.0)
    cell = {"variant": "cell path", "processes": 1, "trials": 4}
    cell.update(compile_seconds=10.0, trial_seconds=130.0)  # one compile, then 30 s per trial
    assert trial_cost.cell_seconds(cell, 12) == pytest.approx(10.0 + 12 * 30.0)
    two = {"variant": "2 workers x 1 thread", "processes": 2, "trials": 4}
    two.update(compile_seconds=30.0, trial_seconds=230.0)  # 15 s each, 50 s per trial
    assert trial_cost.cell_seconds(two, 12) == pytest.approx((30.0 + 12 * 50.0) / 2)


def test_pretraining_data_scale_measures_a_run(tmp_path, shared_data):
    """One isolated run of the scale benchmark: its records are all written and its peak RSS
    is that of a process that imported TensorFlow (hundreds of MB)."""
    from benchmarks import common

    text = tmp_path / "text.txt"
    docs = (shared_data / "text" / "wiki_squad_contexts.txt").read_text(encoding="utf-8")
    text.write_text("\n\n".join(docs.split("\n\n")[:20]) + "\n", encoding="utf-8")
    vocab = os.path.join(common.minilm_model_dir(), "vocab.txt")
    out = str(tmp_path / "out" / "train")
    result = common.run_isolated(
        "benchmarks.pretraining_data_scale",
        "one_run",
        kind="project",
        text=str(text),
        vocab=vocab,
        out=out,
        seq=128,
        dupe=1,
        workers=2,
    )
    written = sum(1 for i in range(4) for _ in tf.data.TFRecordDataset(f"{out}-{i}"))
    assert result["instances"] == written > 0
    assert 200 < result["peak_rss_mb"] < 4000 and result["cpu_seconds"] > 0
