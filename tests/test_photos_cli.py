"""Photos through the main tools: ddcmh-bench, ddcmh train and ddcmh encode on a folder of photos.

A small folder layout (60 coloured photos, three classes, short captions) keeps every run to
seconds: a 32-pixel MobileNetV2 input and two epochs per network. The image network is the one
the tools choose for photos (MobileNetV2 with the registry ImageNet weights, fine-tuned).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from ddcmh_core.cli.bench import main as bench_main
from ddcmh_core.cli.main import main as ddcmh_main
from ddcmh_core.data.folder import load_folder_layout
from ddcmh_core.engine.backbones import build_image_network
from ddcmh_core.engine.config import PHOTO_NETWORK, TrainingConfig, network_for_photos
from ddcmh_core.engine.frozen_features import body_features
from ddcmh_core.engine.head_warmup import head_of, warm_up_head
from ddcmh_core.engine.images import ImageFileSource
from ddcmh_core.errors import InputError
from ddcmh_core.evaluation.metrics import mean_average_precision, random_code_floor
from ddcmh_core.methods.base import DataShape
from ddcmh_core.methods.dcmh import DCMH
from ddcmh_core.methods.ddcmh import DDCMH, stage_keys

WORDS = (
    ["apple", "cherry", "tomato", "blood"],
    ["grass", "leaf", "forest", "lime"],
    ["sea", "sky", "ocean", "lake"],
)
ALL_WORDS = [word for words in WORDS for word in words]
N_PHOTOS = 60
NETWORKS = """
[image_network]
image_size = 32
[image_training]
max_epochs = 2
batch_size = 16
[text_training]
max_epochs = 2
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder layout whose photos are tinted by class and whose captions name the class."""
    root = tmp_path_factory.mktemp("photo-folder")
    (root / "images").mkdir()
    (root / "texts").mkdir()
    (root / "categories.list").write_text("red\ngreen\nblue\n")
    rng = np.random.default_rng(0)
    lines = []
    for number in range(N_PHOTOS):
        kind = number % 3
        pixels = rng.integers(0, 80, (48, 64, 3), dtype=np.uint8)
        pixels[..., kind] += 150
        Image.fromarray(pixels).save(root / "images" / f"p{number}.jpg")
        caption = [*rng.choice(WORDS[kind], 5), *rng.choice(ALL_WORDS, 2)]
        (root / "texts" / f"d{number}.txt").write_text(" ".join(caption))
        lines.append(f"d{number}\tp{number}\t{kind + 1}")
    (root / "trainset_txt_img_cat.list").write_text("\n".join(lines) + "\n")
    return root


def _cache_files() -> set[str]:
    return {path.name for path in Path(os.environ["DDCMH_PHOTO_CACHE_DIR"]).glob("photos-*.u8")}


def test_bench_trains_a_cnn_on_photos_caches_them_and_resumes(folder, tmp_path, capsys, monkeypatch) -> None:
    config = tmp_path / "bench.toml"
    networks = NETWORKS.replace("[", "[model.")
    plan = f'dataset = "{folder}"\nhashers = ["sdh"]\nbits = [16]\n'
    config.write_text(f'{plan}[dataset_options]\nsplit = "holdout"\n{networks}')
    before = _cache_files()
    out = tmp_path / "run"
    _every_pass_is_slow(monkeypatch)
    assert bench_main(["--config", str(config), "--out", str(out)]) == 0
    error = capsys.readouterr().err
    assert "the image view is photos: DDCMH's image network is a CNN (mobilenet_v2, registry weights" in error
    # The cell's four encoding passes report, under the cell's prefix; queries then database.
    passes = [line.split("] ", 2)[1] for line in error.splitlines() if "[encoding: " in line]
    assert [name for name in passes if name.startswith("[encoding: image")] == [
        "[encoding: image codes",
        "[encoding: image codes",
    ], error
    assert any("DDCMH + sdh, 16 bits, seed 0] [encoding: text codes]" in line for line in error.splitlines())
    record = json.loads((out / "results.json").read_text())
    network = record["config"]["model"]["image_network"]
    assert network == {
        "architecture": "cnn",
        "backbone": "mobilenet_v2",
        "pretrained": "registry",
        "image_size": 32,
    }
    assert len(_cache_files() - before) >= 1  # the training photos, decoded once
    assert {"results.md", "map_vs_bits.png", "split.h5"} <= {path.name for path in out.iterdir()}
    assert bench_main(["--config", str(config), "--out", str(out)]) == 0  # resume: nothing trains again
    error = capsys.readouterr().err
    assert "DDCMH + sdh, 16 bits, seed 0: reused from" in error


def test_bench_gives_dcmh_the_same_cnn_as_ddcmh_under_its_own_options(folder, tmp_path, capsys) -> None:
    config = tmp_path / "bench.toml"
    config.write_text(
        f'dataset = "{folder}"\nhashers = ["none"]\nmethods = ["dcmh"]\nbits = [16]\n'
        '[dataset_options]\nsplit = "holdout"\n'
        "[method_options.dcmh]\n"
        '"image_network.image_size" = 32\n'
        '"image_network.decode_processes" = true\n'
        '"training.max_epochs" = 2\n'
        '"training.batch_size" = 16\n'
    )
    out = tmp_path / "run"
    assert bench_main(["--config", str(config), "--out", str(out)]) == 0
    error = capsys.readouterr().err
    assert "the image view is photos: DCMH's image network is a CNN (mobilenet_v2, registry weights" in error
    assert "DDCMH's image network" not in error  # no DDCMH in this run
    record = json.loads((out / "results.json").read_text())
    options = record["config"]["method_options"]["dcmh"]
    assert options["image_network"] == {**PHOTO_NETWORK, "image_size": 32, "decode_processes": True}
    assert options["training.max_epochs"] == 2
    (trained,) = [cell for cell in record["cells"] if cell["cell"] == "dcmh-none-16bits-seed0"]
    assert trained["report"]["epochs_run"] == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dcmh_learns_on_cnn_features_only_through_their_batch_norm(folder, seed, tmp_path) -> None:
    """DCMH's reference SGD (10^-1.5 from the first epoch) on a hash layer fed the raw pooled
    features of a pretrained CNN takes steps far too large for them (non-negative, uncentred):
    the objective climbs and the codes fall short. The batch norm DCMH puts there by default
    plays the part of the MLP's input standardisation. On the full Web News photos the raw
    features kept DCMH at the random floor (.127 / .125 against .122)."""
    data = load_folder_layout(folder)
    labels = np.asarray(data.labels)
    floor = float(random_code_floor(labels, labels, 16))

    def fitted(**chosen: str) -> tuple[DCMH, float, float]:
        network = {"architecture": "cnn", "pretrained": "registry", "image_size": 32, "freeze_backbone": True}
        settings = {"n_bits": 16, "device": "cpu", "seed": seed, "validation_fraction": 0.0}
        training = {"max_epochs": 8, "batch_size": 16}
        model = DCMH(**settings, image_network={**network, **chosen}, training=training)
        model.fit(data.image, data.text, data.labels)
        image, text = model.encode_image(data.image), model.encode_text(data.text)
        image_to_text = mean_average_precision(image, text, labels, labels)
        return model, image_to_text, mean_average_precision(text, image, labels, labels)

    normalised, *normalised_maps = fitted()
    raw, *raw_maps = fitted(feature_normalization="none")
    assert normalised.params.image_network.feature_normalization == "batch"
    assert isinstance(normalised.image_network_.feature_norm, torch.nn.BatchNorm1d)
    assert isinstance(raw.image_network_.feature_norm, torch.nn.Identity)
    # measured (seeds 0-2): normalised .87-1.00, raw .58-.74, floor .37
    assert min(normalised_maps) > 0.8
    assert min(normalised_maps) > max(raw_maps) + 0.1 > floor
    # the objective: normalised down to .49-.80 of its first value, raw never below .99 of it
    normalised_objectives = [entry["objective"] for entry in normalised.history_]
    raw_objectives = [entry["objective"] for entry in raw.history_]
    assert min(normalised_objectives) < 0.85 * normalised_objectives[0]
    assert min(raw_objectives) > 0.95 * raw_objectives[0]
    loaded = DCMH.load(normalised.save(tmp_path / "dcmh.h5"))  # the batch norm's statistics included
    np.testing.assert_array_equal(loaded.encode_image(data.image), normalised.encode_image(data.image))


def test_bench_leaves_a_chosen_dcmh_image_network_alone(folder, tmp_path, capsys) -> None:
    arguments = ["--dataset", str(folder), "--hasher", "none", "--method", "dcmh", "--bits", "16"]
    chosen = ["--method-opt", "dcmh:image_network.architecture=mlp", "--dry-run", "--no-calibration"]
    assert bench_main([*arguments, *chosen]) == 2  # an MLP cannot read photos: refused before work
    error = capsys.readouterr().err
    assert "DCMH, 16 bits: image: the view is image files, which need a CNN image network" in error
    assert "DCMH's image network is a CNN" not in error


def test_train_then_encode_a_folder_and_a_list_of_photos(folder, tmp_path, capsys, monkeypatch) -> None:
    config = tmp_path / "model.toml"
    config.write_text(NETWORKS)
    model = tmp_path / "model.h5"
    arguments = [
        "train",
        "--dataset",
        str(folder),
        "--hasher",
        "sdh",
        "--bits",
        "16",
        "--config",
        str(config),
    ]
    assert ddcmh_main([*arguments, "--model", str(model)]) == 0
    assert "the image view is photos: the image network is a CNN (mobilenet_v2" in capsys.readouterr().err
    cached = _cache_files()
    by_folder, by_list = tmp_path / "folder.h5", tmp_path / "list.h5"
    encode = ["encode", "--model", str(model), "--view", "image"]
    _every_pass_is_slow(monkeypatch)
    assert ddcmh_main([*encode, "--images", str(folder / "images"), "--out", str(by_folder)]) == 0
    assert f"[encoding: image codes] {N_PHOTOS}/{N_PHOTOS} photos" in capsys.readouterr().err
    chosen = [f"images/p{number}.jpg" for number in (5, 0, 7)]
    (folder / "some.txt").write_text("\n".join(chosen) + "\n")  # relative to the list file
    assert ddcmh_main([*encode, "--images", str(folder / "some.txt"), "--out", str(by_list)]) == 0
    assert _cache_files() == cached  # encoding reads each photo once: nothing is cached
    with h5py.File(by_folder) as handle:
        codes, ids = handle["codes"][()], [i.decode() for i in handle["ids"][()]]
    assert codes.shape == (N_PHOTOS, 16) and ids == sorted(str(p) for p in (folder / "images").glob("*.jpg"))
    with h5py.File(by_list) as handle:
        listed = handle["codes"][()]
    rows = [ids.index(str(folder / name)) for name in chosen]
    np.testing.assert_array_equal(listed, codes[rows])  # the same photo, the same code either way
    assert ddcmh_main([*encode, "--images", str(tmp_path / "nothing"), "--out", str(by_list)]) == 2
    assert "--images" in capsys.readouterr().err


def test_a_cnn_head_is_trained_saved_and_used_to_encode(folder, tmp_path) -> None:
    config = tmp_path / "model.toml"
    config.write_text(NETWORKS.replace("image_size = 32\n", "image_size = 32\nhead_hidden_sizes = [24]\n"))
    model = tmp_path / "model.h5"
    arguments = ["train", "--dataset", str(folder), "--hasher", "sdh", "--bits", "16"]
    arguments += ["--config", str(config), "--model", str(model)]
    assert ddcmh_main(arguments) == 0
    with h5py.File(model) as handle:
        names: list[str] = []
        handle.visit(names.append)
        head_weights = [name for name in names if "image_network" in name and "head.0.weight" in name]
        assert head_weights, names
        assert handle[head_weights[0]].shape == (24, 1280)
    codes_file = tmp_path / "codes.h5"
    encode = ["encode", "--model", str(model), "--view", "image", "--images", str(folder / "images")]
    assert ddcmh_main([*encode, "--out", str(codes_file)]) == 0
    with h5py.File(codes_file) as handle:
        assert handle["codes"].shape == (N_PHOTOS, 16)


def test_search_encodes_photo_and_text_queries_with_the_model(folder, tmp_path, capsys, monkeypatch) -> None:
    config = tmp_path / "model.toml"
    config.write_text(NETWORKS)
    model, database = tmp_path / "model.h5", tmp_path / "texts.h5"
    train = ["train", "--dataset", str(folder), "--hasher", "sdh", "--bits", "16", "--config", str(config)]
    assert ddcmh_main([*train, "--model", str(model)]) == 0
    encode = ["encode", "--model", str(model), "--view", "text", "--dataset", str(folder), "--part", "all"]
    assert ddcmh_main([*encode, "--out", str(database)]) == 0
    capsys.readouterr()
    (folder / "queries.txt").write_text("images/p0.jpg\nimages/p1.jpg\n")  # relative to the list
    search = ["search", "--database", str(database), "--k", "5"]
    _every_pass_is_slow(monkeypatch)
    assert ddcmh_main([*search, "--model", str(model), "--query-images", str(folder / "queries.txt")]) == 0
    output = capsys.readouterr()
    assert "[encoding: image codes] 2/2 photos" in output.err
    found = json.loads(output.out)["results"]
    assert [entry["query"] for entry in found] == [
        str(folder / "images/p0.jpg"),
        str(folder / "images/p1.jpg"),
    ]
    assert all(len(entry["hits"]) == 5 for entry in found)
    (tmp_path / "captions.txt").write_text("apple cherry tomato\nsea sky ocean lake\n")
    assert ddcmh_main([*search, "--model", str(model), "--query-texts", str(tmp_path / "captions.txt")]) == 0
    assert [entry["query"] for entry in json.loads(capsys.readouterr().out)["results"]] == [
        "line 1",
        "line 2",
    ]
    assert ddcmh_main([*search, "--query-images", str(folder / "images")]) == 2
    assert "--query-images needs --model FILE.h5" in capsys.readouterr().err


def test_both_commands_fill_in_the_photo_network_under_the_users_own_keys():
    assert network_for_photos(None) == PHOTO_NETWORK
    chosen = {"backbone": "resnet18", "image_size": 128, "freeze_backbone": True}
    assert network_for_photos(chosen) == {**PHOTO_NETWORK, **chosen}  # the user's backbone stays
    assert network_for_photos({"architecture": "mlp", "hidden_sizes": [64]}) is None  # the user chose


# ---------------------------------------------------------------------- head warm-up (LP-FT)
def test_a_head_warm_up_trains_only_the_head_towards_the_codes_and_keeps_the_body(folder) -> None:
    data = load_folder_layout(folder, split="holdout")
    labels = np.asarray(data.labels)
    rng = np.random.default_rng(0)
    class_codes = (rng.random((3, 16)) > 0.5).astype(np.float32)
    targets = class_codes[labels.argmax(axis=1)]  # one code per class, as Stage 1 would give
    rows = np.arange(N_PHOTOS)
    torch.manual_seed(0)
    network = build_image_network("mobilenet_v2", 16, pretrained="registry")
    source = ImageFileSource.for_backbone(data.image.paths, "mobilenet_v2", image_size=32)
    body_before = {name: value.clone() for name, value in network.body.state_dict().items()}
    features = body_features(network, source)

    def bit_accuracy() -> float:
        with torch.no_grad():
            logits = head_of(network.eval())(torch.from_numpy(features))
        return float(((logits > 0).numpy() == targets.astype(bool)).mean())

    before = bit_accuracy()
    config = TrainingConfig(max_epochs=1, batch_size=16, head_warmup_epochs=30, learning_rate=3e-3)
    lines: list[str] = []
    result = warm_up_head(network, source, targets, rows, config, seed=0, progress=lines.append)
    assert result.epochs_run == 30 and result.best_epoch == 30 and result.seconds > 0  # no validation
    assert before < 0.75 and bit_accuracy() > 0.95  # measured: .57 before, 1.0 after
    for name, value in network.body.state_dict().items():  # batch-norm statistics included
        torch.testing.assert_close(value, body_before[name], rtol=0, atol=0, msg=name)
    assert any("head warm-up: body features" in line for line in lines)
    np.testing.assert_array_equal(body_features(network, source), features)

    # with validation: every epoch runs whatever the patience, and the best one's weights are kept
    scores = iter([0.1, 0.5, 0.2, 0.1, 0.1, 0.1])
    kept: dict[int, torch.Tensor] = {}

    def validate_on(features_source):
        assert features_source.n_features == network.info.feature_dim  # validated on features

        def validate(candidate: torch.nn.Module) -> float:
            kept[len(kept) + 1] = network.hash_layer.weight.detach().clone()
            return next(scores)

        return validate

    impatient = config.model_copy(update={"head_warmup_epochs": 6, "patience": 1})
    result = warm_up_head(network, source, targets, rows, impatient, validate_on=validate_on, seed=1)
    assert (result.epochs_run, result.best_epoch, result.best_score) == (6, 2, 0.5)
    torch.testing.assert_close(network.hash_layer.weight, kept[2], rtol=0, atol=0)


def test_ddcmh_warms_the_head_up_chooses_its_epochs_on_validation_and_repeats_them_in_the_refit(
    folder, capsys
) -> None:
    data = load_folder_layout(folder, split="holdout")
    settings = {"n_bits": 16, "hasher": "sdh", "device": "cpu", "image_network": network_for_photos({})}
    settings["image_network"]["image_size"] = 32
    training = {"max_epochs": 1, "batch_size": 16}
    lines: list[str] = []
    model = DDCMH(
        **settings,
        image_training={**training, "head_warmup_epochs": 4, "patience": 1},
        text_training=training,
        validation_fraction=0.2,
    )
    model.fit(data.image, data.text, data.labels, progress=lines.append)
    chosen = model.report_["selection"]["stage2_head_warmup"]
    assert chosen["epochs_run"] == 4  # no early stop in the warm-up, whatever the patience
    assert 1 <= chosen["best_epoch"] <= 4 and chosen["best_score"] is not None and chosen["seconds"] > 0
    refit = model.report_["stage2_head_warmup"]
    assert refit["best_score"] is None and refit["best_epoch"] == chosen["best_epoch"]  # repeated as chosen
    assert any(f"after {chosen['best_epoch']} of head warm-up" in line for line in lines)
    assert any("head warm-up epoch 1/4" in line or "head warm-up] epoch 1/4" in line for line in lines), lines
    plain = DDCMH(**settings, image_training=training, text_training=training, validation_fraction=0.2)
    plain.fit(data.image, data.text, data.labels)
    assert plain.report_["stage2_head_warmup"] is None
    # the warm-up is part of Stage 2's settings: another count is another Stage-2 file
    assert stage_keys(model.params)["stage2"] != stage_keys(plain.params)["stage2"]
    assert stage_keys(model.params)["stage1"] == stage_keys(plain.params)["stage1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"text_training": {"head_warmup_epochs": 3}},
            "text_training.head_warmup_epochs=3: the text network",
        ),
        (
            {"image_network": {"architecture": "cnn", "freeze_backbone": True}},
            "the CNN's body is frozen (freeze_backbone=true)",
        ),
        ({"image_network": {"architecture": "mlp"}}, "the image network is not a CNN"),
    ],
    ids=["text network", "frozen body", "mlp"],
)
def test_a_head_warm_up_where_there_is_no_fine_tuned_cnn_is_a_problem_before_work(change, message) -> None:
    photos = DataShape(n_rows=100, n_features={"image": None, "text": 30})
    settings = {"n_bits": 16, "image_network": {"architecture": "cnn"}, **change}
    settings.setdefault("image_training", {"head_warmup_epochs": 3})
    problems = DDCMH.data_problems(DDCMH.make_params(**settings), photos)
    assert any(message in problem for problem in problems), problems
    features = DataShape(n_rows=100, n_features={"image": 64, "text": 30})
    warm = DDCMH.make_params(n_bits=16, image_training={"head_warmup_epochs": 3})
    assert any(
        "the image view is feature vectors" in problem for problem in DDCMH.data_problems(warm, features)
    )
    fine_tuned = DDCMH.make_params(
        n_bits=16, image_network={"architecture": "cnn"}, image_training={"head_warmup_epochs": 3}
    )
    assert DDCMH.data_problems(fine_tuned, photos) == []
    with pytest.raises(InputError, match=r"DCMH trains both networks together .* no head warm-up"):
        DCMH(n_bits=16, training={"head_warmup_epochs": 3, "schedule": "none"})


def _every_pass_is_slow(monkeypatch) -> None:
    """Every encoding pass reports each of its batches (none is slow on these tiny photos)."""
    from ddcmh_core.engine.inference import PassProgress

    monkeypatch.setattr(PassProgress, "QUIET_SECONDS", 0.0)
    monkeypatch.setattr(PassProgress, "EVERY_SECONDS", 0.0)


def test_the_photo_passes_of_validation_show_their_progress_when_slow(folder, monkeypatch) -> None:
    _every_pass_is_slow(monkeypatch)
    data = load_folder_layout(folder, split="holdout")
    image_network = {**network_for_photos({}), "image_size": 32}
    one_epoch = {"max_epochs": 1, "batch_size": 16}
    ddcmh_lines: list[str] = []
    ddcmh = DDCMH(
        n_bits=16,
        hasher="sdh",
        device="cpu",
        image_network=image_network,
        image_training=one_epoch,
        text_training=one_epoch,
        validation_fraction=0.2,
        refit=False,
    )
    ddcmh.fit(data.image, data.text, data.labels, progress=ddcmh_lines.append)
    n_fit = len(ddcmh.fit_rows_)
    assert f"[stage 2 validation: image codes] {n_fit}/{n_fit} photos" in "\n".join(ddcmh_lines)
    assert f"[stage 2: image codes] {n_fit}/{n_fit} photos" in "\n".join(ddcmh_lines)
    dcmh_lines: list[str] = []
    dcmh = DCMH(n_bits=16, device="cpu", image_network=image_network, training={"max_epochs": 1})
    dcmh.fit(data.image, data.text, data.labels, progress=dcmh_lines.append)
    assert any(line.startswith("[DCMH validation: image codes]") and "photos" in line for line in dcmh_lines)
