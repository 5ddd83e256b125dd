"""The ImageNet search: the ImageNet supernet, its protocol, the random-resized crop, the folder split and
the subset tool that writes the folders."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pcdarts_core import KNOWN_GENOTYPES, ConfigError, DataError, NetworkImageNet, SearchConfig, SearchNetwork
from pcdarts_core.architect import Architect
from pcdarts_core.cli import run_main
from pcdarts_core.config import SEARCH_PROTOCOLS
from pcdarts_core.data import DatasetBundle, DeviceBatches, ImageTensors, load_dataset, random_resized_crop
from pcdarts_core.data.augment import _resize_crops
from pcdarts_core.data.subset import main as subset_main
from pcdarts_core.operations import FactorizedReduce
from pcdarts_core.search import Search, cosine_factor, run_search
from pcdarts_core.supernet import derive_cell

# --- the supernet ---------------------------------------------------------------------------------------


def test_imagenet_supernet_stems_and_output_shape():
    net = SearchNetwork(C=8, layers=5, k=2, num_classes=1000, network="imagenet")
    x = torch.randn(2, 3, 64, 64)
    s0 = net.stem0(x)
    assert s0.shape == (2, 24, 16, 16)  # two stride-2 convs to stem_multiplier x C
    assert net.stem1(s0).shape == (2, 24, 8, 8)
    # The first cell reads stem0's twice as large output through a factorized reduce, the second cell does not.
    assert isinstance(net.cells[0].preprocess0, FactorizedReduce)
    assert not isinstance(net.cells[1].preprocess0, FactorizedReduce)
    assert [c.reduction for c in net.cells] == [False, True, False, True, False]
    assert net(x).shape == (2, 1000)
    assert not hasattr(net, "stem") and not hasattr(SearchNetwork(C=8, layers=5), "stem0")


def _authors_layout_weights(C: int, layers: int, classes: int, k: int) -> int:
    """Weights (α/β aside) of the layout of the authors' model_search_imagenet.py, counted from its description:
    stems conv 3->3C/2 (s2), BN, ReLU, conv ->3C (s2), BN | ReLU, conv 3C->3C (s2), BN, all BN affine; cells with
    non-affine BN, whose preprocessing holds c_in x C weights (1x1 conv or factorized reduce alike); per edge, on
    p = C/K channels, sep convs 2(9p + p²) and 2(25p + p²), dil convs 9p + p² and 25p + p², pools nothing, and
    on a stride-2 edge the skip's factorized reduce p²; a linear classifier on the last cell's 4C channels."""
    stem = 3 * C
    total = 3 * (stem // 2) * 9 + 2 * (stem // 2) + (stem // 2) * stem * 9 + 2 * stem + stem * stem * 9 + 2 * stem
    c_prev_prev, c_prev, c = stem, stem, C
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        c *= 2 if reduction else 1
        total += (c_prev_prev + c_prev) * c
        p = c // k
        for node in range(4):
            for source in range(node + 2):
                total += 102 * p + 6 * p * p + (p * p if reduction and source < 2 else 0)
        c_prev_prev, c_prev = c_prev, 4 * c
    return total + c_prev * classes + classes


def test_parameter_count_is_that_of_the_authors_imagenet_supernet():
    net = SearchNetwork(C=16, layers=8, k=2, num_classes=1000, network="imagenet")
    weights = sum(p.numel() for p in net.weight_parameters())
    assert weights == _authors_layout_weights(16, 8, 1000, 2)
    # Also the count of the authors' Network(16, 1000, 8) itself, built from their model_search_imagenet.py on a
    # CPU: 956,512 weights, and the same forward pass (to 5e-6) with the same weights and α/β.
    assert weights == 956_512
    assert sum(p.numel() for p in net.arch_parameters()) == 2 * 14 * 8 + 2 * 14


def test_stems_are_built_by_the_helper_the_evaluation_network_uses():
    search = SearchNetwork(C=16, layers=5, k=2, network="imagenet")  # stems of 3C = 48 channels
    evaluation = NetworkImageNet(48, 10, 5, False, KNOWN_GENOTYPES["PC_DARTS_image"])

    def layers(module):
        return [(type(m).__name__, tuple(p.shape for p in m.parameters(recurse=False))) for m in module.modules()]

    assert layers(search.stem0) == layers(evaluation.stem0)
    assert layers(search.stem1) == layers(evaluation.stem1)


def test_genotype_derivation_is_the_cifar_one():
    torch.manual_seed(0)
    imagenet = SearchNetwork(C=8, layers=5, k=2, network="imagenet")
    cifar = SearchNetwork(C=8, layers=5, k=2)
    with torch.no_grad():
        for name in SearchNetwork.ARCH_NAMES:
            getattr(imagenet, name).copy_(torch.randn_like(getattr(imagenet, name)) * 3)
            getattr(cifar, name).copy_(getattr(imagenet, name))
    weights = imagenet.arch_weights()
    assert imagenet.genotype() == cifar.genotype()
    assert list(imagenet.genotype().normal) == derive_cell(weights["alphas_normal"], weights["betas_normal"], 4)
    assert list(imagenet.genotype().reduce) == derive_cell(weights["alphas_reduce"], weights["betas_reduce"], 4)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_any_k_works(k):
    net = SearchNetwork(C=8, layers=3, k=k, num_classes=5, network="imagenet")
    F.cross_entropy(net(torch.randn(2, 3, 32, 32)), torch.tensor([0, 4])).backward()
    assert all(p.grad is not None for p in net.arch_parameters())


def test_an_odd_stem_is_refused_naming_init_channels():
    with pytest.raises(ConfigError, match=r"^init_channels=15: the ImageNet stem halves .* use an even init_channels"):
        SearchConfig(network="imagenet", init_channels=15)
    with pytest.raises(ConfigError, match=r"^init_channels=15:"):
        SearchNetwork(C=15, k=3, network="imagenet")
    with pytest.raises(ConfigError, match=r"^network='resnet':"):
        SearchNetwork(C=8, k=2, network="resnet")  # type: ignore[arg-type]
    SearchConfig(init_channels=15, k=3)  # the CIFAR stem takes any C


# --- the protocol -----------------------------------------------------------------------------------------


def test_the_imagenet_search_protocol_is_the_authors_script():
    config = SearchConfig.protocol("imagenet")
    expected = {
        "network": "imagenet",
        "dataset": "imagefolder",
        "image_size": 224,
        "data_split": "folders",
        "train_portion": 0.8,  # 10% : 2.5% of each class
        "init_channels": 16,
        "layers": 8,
        "k": 2,
        "epochs": 50,
        "warmup_epochs": 35,
        "batch_size": 1024,
        "lr": 0.5,
        "lr_min": 0.0,
        "lr_warmup_epochs": 5,
        "momentum": 0.9,
        "weight_decay": 3e-4,
        "grad_clip": 5.0,
        "arch_lr": 6e-3,
        "arch_beta1": 0.5,
        "arch_beta2": 0.999,
        "arch_weight_decay": 1e-3,
        "arch_grad_clip": 5.0,
        "order": "first",
        "augment": "imagenet",
        "cutout": 0,
    }
    assert {name: getattr(config, name) for name in expected} == expected
    assert SearchConfig.protocol("cifar") == SearchConfig()
    assert SearchConfig.protocol("imagenet", k=4, seed=3).k == 4
    assert set(SEARCH_PROTOCOLS) == {"cifar", "imagenet"}
    with pytest.raises(ConfigError, match=r"^protocol='mnist': unknown protocol; use one of cifar, imagenet"):
        SearchConfig.protocol("mnist")


def test_weight_lr_warms_up_linearly_and_cifar_is_unchanged():
    config = SearchConfig.protocol("imagenet")
    cosine = [(1 + math.cos(math.pi * e / 50)) / 2 for e in range(7)]
    factors = [cosine_factor(e, config) for e in range(7)]
    assert factors == pytest.approx([c * min(1.0, (e + 1) / 5) for e, c in enumerate(cosine)])
    cifar = SearchConfig()
    assert [cosine_factor(e, cifar) for e in range(3)] == pytest.approx(
        [(1 + math.cos(math.pi * e / 50)) / 2 for e in range(3)]
    )
    with pytest.raises(ConfigError, match=r"^lr_warmup_epochs=5: must be less than epochs=5"):
        SearchConfig(epochs=5, warmup_epochs=1, lr_warmup_epochs=5)


def test_folders_split_needs_an_image_folder():
    with pytest.raises(ConfigError, match=r"^data_split='folders': .*use data_split='random' or dataset='imagefolder'"):
        SearchConfig(data_split="folders")


def test_a_checkpoint_written_before_the_new_settings_resumes():
    saved = SearchConfig().model_dump()
    for name in ("network", "data_split", "lr_warmup_epochs", "arch_grad_clip", "augment"):
        del saved[name]
    assert SearchConfig.for_resume(saved, {"epochs": 60}, frozenset({"epochs"})).epochs == 60


def test_arch_grad_clip_clips_the_architecture_gradient():
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    moved = {}
    for clip in (None, 1e-12):
        torch.manual_seed(0)
        net = SearchNetwork(C=4, layers=3, k=2, num_classes=3, network="imagenet")
        config = SearchConfig(init_channels=4, layers=3, k=2, arch_lr=0.1, arch_weight_decay=0, arch_grad_clip=clip)
        before = net.alphas_normal.detach().clone()
        Architect(net, config).step(x, y, x, y, 0.1, torch.optim.SGD(net.weight_parameters(), lr=0.1))
        moved[clip] = (net.alphas_normal.detach() - before).abs().max().item()
    # Adam moves by about arch_lr whatever the gradient's size, unless the gradient falls far below its eps.
    assert moved[None] == pytest.approx(0.1, rel=0.05) and moved[1e-12] < 1e-3


# --- the random-resized crop -------------------------------------------------------------------------------


def test_resized_crops_are_bilinear_resizes_of_the_crops():
    torch.manual_seed(0)
    x = torch.rand(5, 3, 24, 30)
    top, left = torch.tensor([0, 3, 10, 0, 7]), torch.tensor([0, 5, 1, 20, 0])
    height, width = torch.tensor([24, 9, 14, 5, 17]), torch.tensor([30, 12, 29, 10, 8])
    out = _resize_crops(x, top, left, height, width)
    for i in range(5):
        crop = x[i : i + 1, :, top[i] : top[i] + height[i], left[i] : left[i] + width[i]]
        expected = F.interpolate(crop, size=(24, 30), mode="bilinear", align_corners=False)[0]
        torch.testing.assert_close(out[i], expected, atol=1e-5, rtol=0)


def test_random_resized_crop_draws_a_crop_per_sample():
    x = torch.randint(0, 256, (4, 3, 20, 20), dtype=torch.uint8)
    same = random_resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.equal(same, x)  # the whole image, resized to itself
    out = random_resized_crop(x.float(), torch.Generator().manual_seed(0), scale=(0.25, 0.25), ratio=(1.0, 1.0))
    offsets = []
    for i in range(4):  # each output is one 10x10 crop of its image, enlarged twice
        matches = [
            (t, l)
            for t in range(11)
            for l in range(11)  # noqa: E741
            if torch.allclose(
                F.interpolate(x[i : i + 1, :, t : t + 10, l : l + 10].float(), size=(20, 20), mode="bilinear")[0],
                out[i],
                atol=1e-3,
            )
        ]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 1
    again = random_resized_crop(x, torch.Generator().manual_seed(5))
    assert again.dtype == torch.uint8 and again.shape == x.shape
    assert torch.equal(again, random_resized_crop(x, torch.Generator().manual_seed(5)))


def test_device_batches_augment_the_imagenet_way_on_request():
    images, labels = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8), torch.arange(8)

    def batch(style: str) -> torch.Tensor:
        kwargs = dict(batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3, augment=True, shuffle=False)
        batches = DeviceBatches(
            images, labels, augment_style=style, generator=torch.Generator().manual_seed(0), **kwargs
        )
        return next(iter(batches))[0]

    cifar, imagenet = batch("cifar"), batch("imagenet")
    assert cifar.shape == imagenet.shape == (8, 3, 16, 16) and not torch.equal(cifar, imagenet)
    with pytest.raises(ConfigError, match=r"^augment='autoaugment':"):
        batch("autoaugment")


# --- the folder split ----------------------------------------------------------------------------------------


def _bundle(train: int, test: int, size: int = 32, classes: int = 3) -> DatasetBundle:
    gen = torch.Generator().manual_seed(0)

    def split(n: int, offset: int) -> ImageTensors:
        images = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)
        images[:, 0, 0, 0] = torch.arange(offset, offset + n) % 256  # marks each image
        return ImageTensors(images, torch.arange(n) % classes)

    return DatasetBundle("imagefolder", split(train, 0), split(test, 100), classes, 3, size, (0.5,) * 3, (0.25,) * 3)


def test_folders_split_trains_the_weights_on_train_and_the_architecture_on_val():
    data = _bundle(40, 10)
    tiny = dict(init_channels=4, layers=3, batch_size=8, epochs=2, warmup_epochs=1, lr_warmup_epochs=0, device="cpu")
    config = SearchConfig.protocol("imagenet", **tiny, image_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = Search(config, data=data)
        subset = Search(config.replace(train_subset=20), data=data)
    marks = {part: sorted(search._parts[part][0][:, 0, 0, 0].tolist()) for part in ("train", "valid")}
    assert marks == {"train": list(range(40)), "valid": list(range(100, 110))}
    assert [len(subset.split[p]) for p in ("train", "valid")] == [16, 4]  # train_portion 0.8 of train_subset 20
    assert search._data_facts["valid_images"] == 10
    with pytest.raises(DataError, match=r"^data_split='folders': .* has no val/"):
        Search(config, data=dataclasses.replace(data, test=None))


# --- the subset tool --------------------------------------------------------------------------------------------


def _image_folder(root: Path, classes: int = 3, per_class: int = 40) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / "train" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            suffix = "png" if i % 2 else "jpg"
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"im{i:03d}.{suffix}")
    return root


def _files(folder: Path) -> dict[str, set[str]]:
    return {
        half: {str(p.relative_to(folder / half)) for p in (folder / half).rglob("*.*")} for half in ("train", "val")
    }


def _exit(argv: list[str], capsys) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as done:
        run_main(subset_main, argv)
    return done.value.code, capsys.readouterr().err.strip().splitlines()


def test_subset_samples_each_class_into_disjoint_seeded_halves_of_links(tmp_path, capsys):
    source = _image_folder(tmp_path / "src")
    assert subset_main([str(source), str(tmp_path / "a"), "--seed", "3", "--quiet"]) == 0
    assert (
        capsys.readouterr().out.strip()
        == f"{tmp_path / 'a'}: train/ 12 images, val/ 3 images, 3 classes (symbolic links)"
    )
    files = _files(tmp_path / "a")
    for c in range(3):  # round(0.1 x 40) and round(0.025 x 40) of each class
        assert sum(f.startswith(f"class{c}/") for f in files["train"]) == 4
        assert sum(f.startswith(f"class{c}/") for f in files["val"]) == 1
    assert not files["train"] & files["val"]
    manifest = json.loads((tmp_path / "a" / "subset.json").read_text())
    assert manifest["seed"] == 3 and manifest["images"] == {"train": 12, "val": 3} and manifest["files"] == "links"
    for half, names in files.items():
        for name in names:
            link = tmp_path / "a" / half / name
            assert link.is_symlink() and link.resolve() == (source / "train" / name).resolve()
    subset_main([str(source), str(tmp_path / "b"), "--seed", "3", "--quiet"])
    subset_main([str(source), str(tmp_path / "c"), "--seed", "4", "--per-class-fraction", "0.5", "0.25", "--quiet"])
    assert _files(tmp_path / "b") == files
    other = _files(tmp_path / "c")
    assert [len(other[h]) for h in ("train", "val")] == [60, 30] and not other["train"] & other["val"]
    data = load_dataset("imagefolder", tmp_path / "a", image_size=8)  # what a search with data_split=folders reads
    assert (len(data.train), len(data.test), data.num_classes) == (12, 3, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c", "src"]  # no partial folder left


def test_subset_copies_on_request(tmp_path, capsys):
    source = _image_folder(tmp_path / "src", classes=2, per_class=8)
    subset_main([str(source / "train"), str(tmp_path / "out"), "--per-class-fraction", "0.25", "0.25", "--copy"])
    captured = capsys.readouterr()
    assert "(copies)" in captured.out and "16 images in 2 classes" in captured.err
    copies = list((tmp_path / "out").rglob("im*"))
    assert len(copies) == 8 and not any(p.is_symlink() for p in copies)


def test_subset_copies_where_links_cannot_be_made(tmp_path, capsys, monkeypatch):
    source = _image_folder(tmp_path / "src", classes=2, per_class=8)

    def refuse(*args, **kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr("pcdarts_core.data.subset.os.symlink", refuse)
    with pytest.raises(SystemExit) as done:
        run_main(subset_main, [str(source), str(tmp_path / "out"), "--per-class-fraction", "0.25", "0.25", "--quiet"])
    captured = capsys.readouterr()
    assert done.value.code == 0 and "(copies)" in captured.out
    assert captured.err.strip() == (
        f"warning: cannot make symbolic links beside {tmp_path / 'out'} (Operation not permitted): copying the files "
        "instead"
    )
    assert len(list((tmp_path / "out").rglob("im*"))) == 8


def test_subset_bad_input_exits_2_with_one_line(tmp_path, capsys):
    source = _image_folder(tmp_path / "src", classes=2, per_class=4)
    code, err = _exit([str(tmp_path / "missing"), str(tmp_path / "out")], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: SOURCE {tmp_path / 'missing'}: not a directory")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    code, err = _exit([str(source), str(tmp_path / "full")], capsys)
    assert code == 2 and len(err) == 1 and "already exists and is not empty" in err[0]
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    code, err = _exit([str(source), str(tmp_path / "out"), "--per-class-fraction", "0.8", "0.5"], capsys)
    assert code == 2 and len(err) == 1 and "--per-class-fraction 0.8 0.5:" in err[0]
    code, err = _exit([str(source), str(tmp_path / "out"), "--per-class-fraction", "0.9", "0.1"], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: class 'class0': its 4 images cannot give 4 + 1")
    code, err = _exit([str(source), str(source / "train" / "inside")], capsys)
    assert code == 2 and len(err) == 1 and "lies inside the folder sampled" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "src"]  # nothing written


# --- end to end --------------------------------------------------------------------------------------------------


def test_imagenet_search_runs_on_a_subset_folder_and_resumes_exactly(tmp_path):
    source = _image_folder(tmp_path / "src")
    subset_main([str(source), str(tmp_path / "subset"), "--per-class-fraction", "0.25", "0.125", "--quiet"])
    config = SearchConfig.protocol(
        "imagenet",
        data_root=str(tmp_path / "subset"),
        image_size=32,
        init_channels=4,
        layers=3,
        batch_size=16,
        epochs=2,
        warmup_epochs=1,
        lr_warmup_epochs=1,
        arch_lr=0.1,
        device="cpu",
    )
    data = load_dataset("imagefolder", config.data_root, image_size=32)

    def save_first(record, search):
        if record.epoch == 1:
            search.save(tmp_path / "checkpoint.pt")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the architecture budget of a 2-epoch search
        whole = run_search(config, data=data, on_epoch=save_first)
        resumed = run_search(config, data=data, resume_from=tmp_path / "checkpoint.pt")
    assert [r.arch_frozen for r in whole.history] == [True, False]
    assert whole.history[0].lr == pytest.approx(0.5)  # lr 0.5, one warm-up epoch
    assert len(whole.genotype.normal) == len(whole.genotype.reduce) == 8
    torch.testing.assert_close(
        torch.tensor(resumed.history[-1].alphas_normal), torch.tensor(whole.history[-1].alphas_normal), rtol=0, atol=0
    )
    assert resumed.genotype == whole.genotype
