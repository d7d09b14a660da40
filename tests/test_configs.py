"""The shipped configs/: recipes, search spaces and presets load and say what papers print."""

import json
import pathlib

import pytest

from bert.studies import scaling, space
from bert.training import experiment, recipes
from data import config_files

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
ALL_CONFIGS = [pathlib.Path(p) for p in experiment.experiment_files()]

# You et al., Table 4 (papers/003_9517fb6331474ddb.txt:224-226) and the steps of Table 1
# (:186-192): batch, x in lr = 5 / (2^x * 10^3), warmup ratio 1/n, steps.
TABLE4 = [
    (512, 3.0, 320, 1_000_000),
    (1024, 2.5, 160, 500_000),
    (2048, 2.0, 80, 250_000),
    (4096, 1.5, 40, 125_000),
    (8192, 1.0, 20, 62_500),
    (16384, 0.5, 10, 31_250),
    (32768, 0.0, 5, 15_625),
]


def _raw(name):
    return json.loads((CONFIGS / f"{name}.json").read_text())


def _leaves(obj, path=()):
    """{path: value} for every leaf of nested dicts and lists."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        return {path: obj}
    return {k: v for key, child in items for k, v in _leaves(child, (*path, key)).items()}


_MISSING = object()


def _diff(a, b):
    """Leaf paths where two configs differ, description and sources aside."""
    la = _leaves({k: v for k, v in a.items() if k not in ("description", "sources")})
    lb = _leaves({k: v for k, v in b.items() if k not in ("description", "sources")})
    return {p for p in la.keys() | lb.keys() if la.get(p, _MISSING) != lb.get(p, _MISSING)}


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_config_loads_by_name_and_cites_sources(path):
    name = str(path.relative_to(CONFIGS).with_suffix(""))
    config = experiment.load_experiment(name)  # as --experiment=<name> finds it
    assert config.phases and config.description
    assert config.sources, f"{name} cites no sources"


@pytest.mark.parametrize("path", sorted((CONFIGS / "search").glob("*.json")), ids=lambda p: p.name)
def test_every_search_space_loads_by_name_and_names_its_experiment(path):
    loaded = space.load_search_space(path.stem)  # as --search_space=<name> finds it
    assert loaded.parameters and loaded.description and loaded.sources
    assert loaded.raw == json.loads(path.read_text())  # what a study records
    assert experiment.load_experiment(loaded.experiment).phase(loaded.phase)


@pytest.mark.parametrize(
    "path", sorted((CONFIGS / "reality_check").glob("*.json")), ids=lambda p: p.name
)
def test_every_preset_loads_by_name_and_its_spaces_and_experiments_too(path):
    preset = scaling.load_preset(path.stem)  # as --preset=<name> finds it
    assert preset.description and preset.sources
    for optimizer, name in preset.search_spaces.items():
        space.load_search_space(name)
        experiment.load_experiment(preset.experiments[optimizer]).phase(preset.phase)


def _write(tmp_path, raw):
    path = tmp_path / "config.json"
    path.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    return str(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.pop("model"), r"missing field\(s\) \['model'\]"),
        (lambda r: r.update(steps=3), r"unknown field\(s\) \['steps'\]"),
        (
            lambda r: r["phases"][1].update(optimizer="lamb"),
            r"field 'phases\[1\]\.optimizer' must be a JSON object, got 'lamb'",
        ),
        (
            lambda r: r["phases"][0].update(max_seq_len=128),
            r"phases\[0\]: unknown field\(s\) \['max_seq_len'\]",
        ),
        (
            lambda r: r["phases"][0].update(num_train_steps="40"),
            r"field 'phases\[0\]\.num_train_steps' must be an integer, got '40'",
        ),
        (lambda r: r.update(sources="a paper"), r"field 'sources' must be a list"),
        (lambda r: r.update(phases=[]), r"field 'phases' must be a non-empty list"),
    ],
)
def test_a_bad_experiment_names_the_file_and_the_field(tmp_path, edit, message):
    raw = _raw("tiny_lamb")
    edit(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(ValueError, match=f"^{path}: .*{message}|^{path}: {message}"):
        experiment.load_experiment(path)


def test_unreadable_and_missing_config_files_are_named(tmp_path):
    path = _write(tmp_path, '{"model": "tiny",')
    with pytest.raises(ValueError, match=f"^{path}: not valid JSON"):
        experiment.load_experiment(path)
    with pytest.raises(FileNotFoundError, match="search space 'no_such' not found"):
        space.load_search_space("no_such")
    parameters = {"x": {"choices": [1, 2], "sets": "schedule.peak_lr"}}
    with pytest.raises(ValueError, match=f"^{path}: field 'fixed' must be a JSON object"):
        config_files.from_dict(
            space.SearchSpace, {"fixed": 1, "parameters": parameters}, path, path=path
        )
    parameters = {"x": {"low": "a", "high": 1, "sets": "schedule.peak_lr"}}
    with pytest.raises(ValueError, match=f"^{path}: field 'parameters.x.low' must be a number"):
        config_files.from_dict(space.SearchSpace, {"parameters": parameters}, path, path=path)


def test_subdirectories_are_shipped():
    names = {str(p.relative_to(CONFIGS)) for p in ALL_CONFIGS}
    assert "ablations/adam_32k_no_bias_correction.json" in names
    assert "lamb_table4/b512.json" in names


def test_table4_files_are_what_the_generator_writes():
    generated = recipes.table4_configs()
    shipped = {str(p.relative_to(CONFIGS)) for p in (CONFIGS / recipes.TABLE4_DIR).glob("*.json")}
    assert shipped == set(generated)
    for relative, config in generated.items():
        assert (CONFIGS / relative).read_text() == recipes.to_json(config), (
            f"{relative} is stale: run python -m bert.recipes"
        )


@pytest.mark.parametrize("batch,x,warmup_denominator,steps", TABLE4)
def test_table4_configs_match_the_paper(batch, x, warmup_denominator, steps):
    config = experiment.load_experiment(f"lamb_table4/{recipes.table4_name(batch)}")
    phase1, phase2 = config.phases
    lr = 5 / (2**x * 1e3)
    assert [p.train_batch_size for p in config.phases] == [batch, batch]
    assert [p.max_seq_length for p in config.phases] == [128, 512]
    assert phase1.num_train_steps + phase2.num_train_steps == steps
    # 9/10 of the epochs at length 128 (:182); at 32K 14,063 + 1,562 (:174).
    assert phase2.num_train_steps == steps // 10
    for phase in config.phases:
        assert phase.optimizer["name"] == "lamb"
        assert phase.schedule["kind"] == "original_bert"
        assert phase.schedule["peak_lr"] == pytest.approx(lr, rel=1e-12)
    assert phase1.schedule["warmup_steps"] == steps // warmup_denominator == 3125
    assert phase2.schedule["warmup_steps"] == 781


def test_table4_32k_is_lamb_32k_with_the_papers_phase2_rate():
    assert experiment.load_experiment("lamb_table4/b32k").phases[0].num_train_steps == 14063
    diff = _diff(_raw("lamb_32k"), _raw("lamb_table4/b32k"))
    assert diff == {("phases", 1, "schedule", "peak_lr")}
    assert _raw("lamb_table4/b32k")["phases"][1]["schedule"]["peak_lr"] == 5e-3


BIAS_CORRECTION = {("phases", i, "optimizer", "bias_correction") for i in (0, 1)}


def _assert_original_schedule(base, ablated):
    """Each phase's schedule is original_bert over adam_32k's peak, warmup and total steps."""
    for old, new in zip(base["phases"], ablated["phases"]):
        s = old["schedule"]
        # adam_32k's p = 1 warmup and decay from and to 0: the same shape, but for the jump.
        assert (s["kind"], s["init_lr"], s["final_lr"]) == ("warmup_poly", 0.0, 0.0)
        assert s["warmup_power"] == s["decay_power"] == 1
        assert new["schedule"] == {
            "kind": "original_bert",
            "peak_lr": s["peak_lr"],
            "total_steps": s["total_steps"],
            "warmup_steps": s["warmup_steps"],
            "power": 1.0,
        }


def test_adam_ablations_change_only_their_difference():
    base = _raw("adam_32k")
    no_bc = _raw("ablations/adam_32k_no_bias_correction")
    schedule = _raw("ablations/adam_32k_original_schedule")
    both = _raw("ablations/adam_32k_no_bias_correction_original_schedule")

    assert _diff(base, no_bc) == BIAS_CORRECTION
    assert all(p["optimizer"]["bias_correction"] is False for p in no_bc["phases"])

    assert all(path[2] == "schedule" for path in _diff(base, schedule))
    _assert_original_schedule(base, schedule)

    assert _diff(base, both) == _diff(base, no_bc) | _diff(base, schedule)
    assert _diff(no_bc, both) == _diff(base, schedule)
    _assert_original_schedule(base, both)


def test_lamb_no_bias_correction_changes_only_bias_correction():
    config = _raw("lamb_32k_no_bias_correction")
    assert _diff(_raw("lamb_32k"), config) == BIAS_CORRECTION
    assert all(p["optimizer"]["bias_correction"] is False for p in config["phases"])


def test_lamb_configs_keep_epsilon_outside_the_sqrt():
    for path in [CONFIGS / "lamb_32k.json", CONFIGS / "lamb_64k_32k.json"]:
        for phase in experiment.load_experiment(str(path)).phases:
            assert phase.optimizer["epsilon_inside_sqrt"] is False


def test_bert_original_512_has_the_lamb_papers_sample_count():
    """Table 1's baseline: batch 512 for 1000k steps, the 32K run's 15,625 x 32,768 samples."""
    config = experiment.load_experiment("bert_original_512")
    samples = sum(p.train_batch_size * p.num_train_steps for p in config.phases)
    assert samples == 512 * 1_000_000 == 32768 * 15625
    assert _diff(_raw("bert_original"), _raw("bert_original_512")) == {
        ("phases", i, "train_batch_size") for i in (0, 1)
    }
    assert {p.train_batch_size for p in experiment.load_experiment("bert_original").phases} == {256}
