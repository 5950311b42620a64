"""Hyper-parameter choice on the validation split: grids, scores, tune() on any method, ddcmh-bench --tune."""

from __future__ import annotations

import json

import numpy as np
import pytest
from engine_data import FAST_NETWORK, FAST_TRAINING, two_view_data

from ddcmh_core import InputError
from ddcmh_core.cli.bench import main
from ddcmh_core.engine.abandon import MedianStoppingRule
from ddcmh_core.methods.ddcmh import DDCMH, DDCMHConfig
from ddcmh_core.tuning import (
    apply_overrides,
    choose_candidate,
    expand_grid,
    flatten_grid,
    halving_survivors,
    tune,
    validation_score,
)


def tune_model(*arguments, **options):
    """The chosen model of :func:`ddcmh_core.tuning.tune` for DDCMH (the method by default)."""
    model, _ = tune(*arguments, **options)
    return model


FAST = {
    "image_training": FAST_TRAINING,
    "text_training": FAST_TRAINING,
    "image_network": FAST_NETWORK,
    "text_network": FAST_NETWORK,
}
CRIPPLED_LEARNING_RATE = 1e-9  # the networks cannot move from their initialisation


def test_nested_tables_and_dotted_keys_give_the_same_grid():
    nested = flatten_grid({"image_network": {"dropout": [0.1, 0.5]}, "hasher_params": {"n_iter": [5]}})
    dotted = flatten_grid({"image_network.dropout": [0.1, 0.5], "hasher_params.n_iter": [5]})
    assert nested == dotted == {"image_network.dropout": [0.1, 0.5], "hasher_params.n_iter": [5]}
    assert expand_grid(nested) == [
        {"image_network.dropout": 0.1, "hasher_params.n_iter": 5},
        {"image_network.dropout": 0.5, "hasher_params.n_iter": 5},
    ]
    assert expand_grid({}) == [{}]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"image_network.dropout": 0.5}, "must be a non-empty list of candidate values"),
        ({"image_network.dropout": []}, "must be a non-empty list"),
        ({"seed": [0, 1]}, "seed cannot be tuned"),
        ({"validation_fraction": [0.1, 0.2]}, "validation_fraction cannot be tuned"),
        ({"image_network": {}}, "is an empty table"),
    ],
)
def test_bad_grids_are_refused_with_the_setting_named(grid, message):
    with pytest.raises(InputError, match=message):
        flatten_grid(grid)


def test_overrides_merge_into_nested_settings_and_are_validated():
    base = DDCMHConfig(image_network={"hidden_sizes": [64], "dropout": 0.2})
    changed = apply_overrides(base, {"image_network.dropout": 0.5, "hasher_params.n_iter": 7})
    assert changed.image_network.hidden_sizes == [64]  # untouched nested settings survive
    assert changed.image_network.dropout == 0.5 and changed.hasher_params == {"n_iter": 7}
    assert base.image_network.dropout == 0.2
    together = apply_overrides(base, {"image_network": {"kernel_lift": "rbf", "lift_width_scale": 0.5}})
    assert together.image_network.hidden_sizes == [64] and together.image_network.dropout == 0.2
    assert together.image_network.kernel_lift == "rbf" and together.image_network.lift_width_scale == 0.5
    with pytest.raises(InputError, match=r"unknown setting 'image_network\.dropuot'"):
        apply_overrides(base, {"image_network.dropuot": 0.5})
    with pytest.raises(InputError, match=r"image_network\.dropout=1\.5: image_network\.dropout"):
        apply_overrides(base, {"image_network.dropout": 1.5})


def test_validation_score_objectives_and_candidate_choice():
    both = {"image->text": 0.2, "text->image": 0.6}
    assert validation_score(both) == pytest.approx(0.4)
    assert validation_score(both, "min") == 0.2
    assert validation_score(both, "text->image") == 0.6
    with pytest.raises(InputError, match="validation_fraction above 0"):
        validation_score({})
    with pytest.raises(InputError, match="is not one of"):
        validation_score(both, "max")
    assert choose_candidate([[0.3, 0.5], [0.4, 0.4], [0.1]]) == 0  # ties keep the earlier one
    assert choose_candidate([[], [0.2]]) == 1
    with pytest.raises(InputError, match="no tuning candidate"):
        choose_candidate([[], []])


def test_tune_chooses_by_validation_and_returns_the_chosen_model(tmp_path):
    images, texts, labels = two_view_data(n_samples=240)
    base = DDCMHConfig(hasher="itq", n_bits=8, **FAST)
    grid = {"image_training.learning_rate": [CRIPPLED_LEARNING_RATE, 1e-3]}
    lines: list[str] = []
    model = tune_model(
        images, texts, labels, grid, params=base, repeats=2, strategy="grid", progress=lines.append
    )
    result = model.tuning_
    assert result.best_index == 1 and model.params.image_training.learning_rate == 1e-3
    assert [len(candidate.scores) for candidate in result.candidates] == [2, 2]
    assert result.seeds == [0, 1]
    assert result.candidates[1].mean_score > result.candidates[0].mean_score + 0.05
    assert model.report_["tuning"]["best_index"] == 1
    assert any("chosen: image_training.learning_rate=0.001" in line for line in lines)
    # The returned model is the chosen candidate trained with the base seed, nothing else.
    plain = DDCMH(apply_overrides(base, {"image_training.learning_rate": 1e-3})).fit(images, texts, labels)
    np.testing.assert_array_equal(model.encode_image(images), plain.encode_image(images))
    assert "image_training.learning_rate=1e-09" in result.table()


def test_tune_refits_only_the_chosen_candidate():
    images, texts, labels = two_view_data(n_samples=200)
    base = DDCMHConfig(hasher="itq", n_bits=8, refit=True, **FAST)
    model = tune_model(images, texts, labels, {"text_network.dropout": [0.0, 0.2]}, params=base)
    assert model.report_["refit"] is True and len(model.fit_rows_) == 200
    assert model.params.refit is True
    assert model.report_["tuning"]["candidates"][0]["scores"]


def test_tune_resumes_from_its_run_folder(tmp_path):
    images, texts, labels = two_view_data(n_samples=160)
    base = DDCMHConfig(hasher="itq", n_bits=8, refit=False, **FAST)
    grid = {"text_network.dropout": [0.0, 0.2]}
    first = tune_model(images, texts, labels, grid, params=base, run_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed-0"]
    stages = sorted(p.name.split("-")[0] for p in (tmp_path / "seed-0").iterdir())
    # Stage 1 (codes and hasher) and Stage 2 (one file per input-lift candidate of the image network)
    # are shared by the two candidates, which differ in Stage 3 only.
    assert stages == ["stage1", "stage1", "stage2", "stage2", "stage3", "stage3"]
    lines: list[str] = []
    again = tune_model(
        images, texts, labels, grid, params=base, run_dir=tmp_path, resume=True, progress=lines.append
    )
    assert sum("reused codes" in line for line in lines) == 2
    assert [c.scores for c in again.tuning_.candidates] == [c.scores for c in first.tuning_.candidates]
    np.testing.assert_array_equal(again.encode_text(texts), first.encode_text(texts))


def test_tune_refuses_bad_settings_before_training():
    images, texts, labels = two_view_data(n_samples=100)
    with pytest.raises(InputError, match="validation split"):
        no_split = DDCMHConfig(validation_fraction=0)
        tune_model(images, texts, labels, {"text_network.dropout": [0.1]}, params=no_split)
    with pytest.raises(InputError, match="argument 'no_such'"):
        tune_model(images, texts, labels, {"hasher_params.no_such": [1]})
    with pytest.raises(InputError, match="repeats must be at least 1"):
        tune_model(images, texts, labels, {"text_network.dropout": [0.1]}, repeats=0)


# ------------------------------------------------------------------ ddcmh-bench --tune
@pytest.fixture
def tiny_run(tiny_dataset):
    data, config = tiny_dataset
    config.write_text(config.read_text() + "[tune.hasher_params]\nn_iter = [3, 10]\n")
    return data, config


def test_bench_reports_the_candidate_chosen_on_validation(tiny_run, tmp_path, capsys):
    data, config = tiny_run
    out = tmp_path / "out"
    arguments = [
        "--dataset", data, "--config", config, "--hasher", "itq,lsh", "--bits", "8", "--seeds", "2",
        "--tune", f"text_training.learning_rate={CRIPPLED_LEARNING_RATE},0.001", "--out", out,
    ]  # fmt: skip
    assert main([str(a) for a in arguments]) == 0
    captured = capsys.readouterr()
    stdout = captured.out
    results = json.loads((out / "results.json").read_text())
    tuning = {record["hasher"]: record for record in results["tuning"]}
    skipped = (
        f"DDCMH + lsh, 8 bits, seed 1, candidate 1 (text_training.learning_rate={CRIPPLED_LEARNING_RATE}): "
        "skipped, behind on validation after the earlier seeds (successive halving)"
    )
    assert skipped in captured.err
    # itq has n_iter: 2 x 2 candidates; lsh has not: only the learning rates.
    assert len(tuning["itq"]["candidates"]) == 4 and len(tuning["lsh"]["candidates"]) == 2
    for record in tuning.values():
        chosen = record["candidates"][record["chosen"]]
        assert chosen["overrides"]["text_training.learning_rate"] == 0.001
        assert chosen["seeds"] == [0, 1] and len(chosen["scores"]) == 2
        complete = [c for c in record["candidates"] if len(c["seeds"]) == 2]
        assert chosen["mean_score"] == max(c["mean_score"] for c in complete)
        # Successive halving: after seed 0 only the best third (rounded up) runs seed 1.
        assert len(complete) == -(-len(record["candidates"]) // 3) and record["strategy"] == "halving"
        assert all(c["seeds"] == [0] for c in record["candidates"] if c not in complete)
    # The reported DDCMH rows are those of the chosen candidate's cells (both seeds).
    stored = [json.loads(path.read_text()) for path in (out / "cells").glob("*.json")]
    cells = {cell["cell"]: cell for cell in stored}
    chosen_key = f"ddcmh-lsh-8bits-seed{{}}-candidate{tuning['lsh']['chosen']}"
    expected = np.mean([_map(cells[chosen_key.format(seed)], "image->text") for seed in (0, 1)])
    reported = _record(results, "lsh", "image->text")
    assert reported["value"] == pytest.approx(expected) and reported["seeds"] == [0, 1]
    assert "Hyper-parameters chosen on the validation split (objective: mean)" in stdout
    chosen_row = next(line for line in stdout.splitlines() if line.startswith("| 2. text_training"))
    assert chosen_row.endswith(f"| **{tuning['lsh']['candidates'][1]['mean_score']:.4f}** |")
    assert len(results["cells"]) == (1 + 4 + 2) + (1 + 2 + 1)  # every cell run stays in results.json
    assert "(1 seed)" in stdout


def test_a_cell_file_copied_from_another_candidate_position_counts_for_the_planned_candidate(
    tiny_dataset, tmp_path, capsys
):
    data, config = tiny_dataset
    first, second = tmp_path / "first", tmp_path / "second"
    common = [
        "--dataset",
        data,
        "--config",
        config,
        "--hasher",
        "lsh",
        "--bits",
        "8",
        "--tune-strategy",
        "grid",
    ]
    assert (
        main([str(a) for a in [*common, "--tune", "text_training.learning_rate=0.001", "--out", first]]) == 0
    )
    # The candidate 0.001 was first in the first run and is second here: its cell file is reused.
    (second / "cells").mkdir(parents=True)
    copied = second / "cells" / "ddcmh-lsh-8bits-seed0-candidate1.json"
    copied.write_text((first / "cells" / "ddcmh-lsh-8bits-seed0-candidate0.json").read_text())
    grid = f"text_training.learning_rate={CRIPPLED_LEARNING_RATE},0.001"
    assert main([str(a) for a in [*common, "--tune", grid, "--out", second]]) == 0
    err = capsys.readouterr().err
    # The label counts candidates from 1, the file key from 0: each line names the candidate's
    # settings and the file it means.
    assert f"candidate 2 (text_training.learning_rate=0.001): reused from {copied}" in err
    first_candidate = second / "cells" / "ddcmh-lsh-8bits-seed0-candidate0.json"
    crippled = f"text_training.learning_rate={CRIPPLED_LEARNING_RATE}"
    assert f"candidate 1] started ({crippled}); its result goes to {first_candidate}" in err
    results = json.loads((second / "results.json").read_text())
    candidates = results["tuning"][0]["candidates"]
    assert [c["seeds"] for c in candidates] == [[0], [0]]  # each candidate has its own seed-0 cell
    assert results["tuning"][0]["chosen"] == 1
    reused = json.loads(copied.read_text())
    reported = _record(results, "lsh", "image->text")
    assert reported["value"] == pytest.approx(_map(reused, "image->text"))


def test_halving_keeps_the_best_third_of_the_racing_candidates_each_round():
    scores = [[0.1, 0.9], [0.5, 0.1], [0.4, 0.4], [0.3], [0.2], [0.6, 0.2]]
    assert halving_survivors(scores, 0) == [0, 1, 2, 3, 4, 5]
    assert halving_survivors(scores, 1) == [1, 5]  # by seed 0 alone
    assert halving_survivors(scores, 2) == [5]  # mean of two seeds: 0.4 against 0.3
    assert halving_survivors([[0.2], [0.2]], 1) == [0]  # ties keep the earlier candidate
    with pytest.raises(InputError, match="no score for seed round 1"):
        halving_survivors([[0.2], []], 1)


def test_halving_chooses_as_the_full_grid_does_at_a_fraction_of_the_fits():
    images, texts, labels = two_view_data(n_samples=200)
    base = DDCMHConfig(hasher="itq", n_bits=8, **FAST)
    grid = {"image_training.learning_rate": [CRIPPLED_LEARNING_RATE, 1e-3, 1e-4]}
    _, full = tune(images, texts, labels, grid, params=base, repeats=3, strategy="grid")
    _, halved = tune(images, texts, labels, grid, params=base, repeats=3)
    assert halved.best_index == full.best_index == 1
    assert [len(c.scores) for c in full.candidates] == [3, 3, 3]
    # After seed 0 one candidate is left; more seeds could not change the choice, so none run.
    assert [len(c.scores) for c in halved.candidates] == [1, 1, 1]
    assert halved.best.scores == full.best.scores[:1]


def test_halving_abandons_a_hopeless_candidate_mid_fit():
    images, texts, labels = two_view_data(n_samples=200)
    training = {**FAST_TRAINING, "max_epochs": 8, "patience": 8}
    base = DDCMHConfig(hasher="itq", n_bits=8, **{**FAST, "image_training": training})
    grid = {"image_training.learning_rate": [1e-3, 2e-3, CRIPPLED_LEARNING_RATE]}
    lines: list[str] = []
    _, halved = tune(
        images, texts, labels, grid, params=base, stopping_rule=MedianStoppingRule(grace_epochs=2),
        progress=lines.append,
    )  # fmt: skip
    crippled = halved.candidates[2]
    assert crippled.abandoned is not None and "stage2 image network" in crippled.abandoned
    assert "after epoch 2" in crippled.abandoned and not crippled.scores
    assert halved.best_index in (0, 1)
    assert "abandoned" in halved.table() and any(": abandoned (" in line for line in lines)
    assert halved.as_dict()["candidates"][2]["abandoned"] == crippled.abandoned


def _map(cell, task):
    return next(
        m["value"]
        for m in cell["tasks"][task]["metrics"]
        if m["metric"] == "map@all" and m["tie_policy"] == "expected"
    )


def _record(results, hasher, task):
    return next(
        r
        for r in results["records"]
        if r["method"] == "ddcmh" and r["hasher"] == hasher and r["task"] == task
        and r["metric"] == "map@all" and r["tie_policy"] == "expected"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--tune", "seed=1,2"], "seed cannot be tuned"),
        (["--tune", "n_bits=8,16"], "n_bits is set by the bench itself"),
        (["--tune", "image_network.dropout"], "expected SETTING=V1,V2"),
        (["--tune", "image_network.dropout=0.1,3"], "invalid model settings (tuning candidate 2 of itq)"),
        (["--tune", "image_network.dropuot=0.1"], "unknown setting 'image_network.dropuot'"),
        (["--hasher", "lsh", "--tune", "hasher_params.n_iter=3,5"], "hasher_params.n_iter applies to none"),
        (["--tune", "hasher_params.n_iter=-1"], "n_iter"),
    ],
)
def test_bad_tuning_grids_exit_2_before_any_work(arguments, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = main(["--hasher", "itq", *arguments] if "--hasher" not in arguments else arguments)
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "ddcmh-results").exists()
