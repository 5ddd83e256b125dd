"""Streamed image folders (``data_loading="stream"``): the same batches, runs and errors as the folder held in
memory, decoded by loader workers that never outlive the run."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from image_folders import folder_search_config, write_image_folder

from pcdarts_core import KNOWN_GENOTYPES, ConfigError, DataError, SearchConfig, TrainConfig, UserInputError
from pcdarts_core.cli import run_main
from pcdarts_core.cli.search import build_parser
from pcdarts_core.cli.search import main as search_main
from pcdarts_core.data import DeviceBatches, FileBatches, FileLoader, ImageFiles, load_dataset
from pcdarts_core.runner import data_facts
from pcdarts_core.search import Search, run_search
from pcdarts_core.train import run_training


def _children() -> list[int]:
    """The processes this one started that are still alive (zombies included), from /proc."""
    pids: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:  # a thread that ended meanwhile
            continue
    return pids


@pytest.fixture(autouse=True)
def no_worker_left():
    before = set(_children())
    yield
    assert multiprocessing.active_children() == []
    assert set(_children()) <= before, "a loader worker outlived its test"


@pytest.fixture(autouse=True)
def one_thread():
    """One thread for the runs here: beside loader workers (and other jobs) on a small CPU, more threads only
    spin on each other. Both modes of a comparison run alike."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """3 classes of 12 (train/) and 4 (val/) noisy 40x30 images, each class with its own tint."""
    return write_image_folder(tmp_path)


_search_config = folder_search_config


def _quiet_search(config: SearchConfig, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the architecture budget of a 2-epoch search
        return run_search(config, **kwargs)


def test_a_streamed_folder_lists_the_files_and_decodes_them_as_in_memory(folder):
    memory = load_dataset("imagefolder", folder, image_size=16)
    stream = load_dataset("imagefolder", folder, image_size=16, loading="stream")
    assert isinstance(stream.train, ImageFiles) and isinstance(stream.test, ImageFiles)
    assert (len(stream.train), len(stream.test), stream.num_classes, stream.image_size) == (36, 12, 3, 16)
    for held, listed in ((memory.train, stream.train), (memory.test, stream.test)):
        assert torch.equal(listed.labels, held.labels)
        assert torch.equal(listed.read(range(len(listed))), held.images)  # the same transform, bit for bit
    # 36 images are fewer than the stream's statistics sample: the whole set, the same figures; the same identity
    assert (stream.mean, stream.std) == (memory.mean, memory.std)
    assert data_facts(stream) == data_facts(memory)


@pytest.mark.parametrize(
    "workers, style, cutout", [(0, "cifar", 4), (2, "imagenet", 0)], ids=["in-process", "2-workers"]
)
def test_streamed_batches_are_the_memory_batches(folder, workers, style, cutout):
    memory = load_dataset("imagefolder", folder, image_size=16)
    stream = load_dataset("imagefolder", folder, image_size=16, loading="stream")
    part = torch.randperm(36, generator=torch.Generator().manual_seed(1))[:30]
    files = stream.train.subset(part)
    loader = FileLoader(files, workers=workers)
    options = dict(batch_size=8, mean=memory.mean, std=memory.std, augment=True, augment_style=style, cutout=cutout)
    try:
        # a pass left after one batch (as a search leaves its architecture half's at the end of an epoch) ...
        next(iter(FileBatches(loader, files.labels, device=torch.device("cpu"), **options)))
        for seed in (3, 4):  # ... and two whole passes after it, which reuse the workers in a new order
            held = DeviceBatches(
                memory.train.images[part],
                memory.train.labels[part],
                generator=torch.Generator().manual_seed(seed),
                **options,
            )
            streamed = FileBatches(
                loader,
                files.labels,
                device=torch.device("cpu"),
                generator=torch.Generator().manual_seed(seed),
                **options,
            )
            pairs = list(zip(held, streamed, strict=True))
            assert len(pairs) == 4  # 30 images in batches of 8
            for (x, y), (xs, ys) in pairs:
                assert torch.equal(x, xs) and torch.equal(y, ys)
        if workers:
            assert len(multiprocessing.active_children()) == workers  # persistent between passes
    finally:
        loader.close()
    assert multiprocessing.active_children() == []


def test_a_streamed_search_finds_what_the_search_in_memory_finds(folder):
    memory = _quiet_search(_search_config(folder))
    streamed = _quiet_search(_search_config(folder, data_loading="stream", loader_workers=2))
    assert [r.arch_frozen for r in streamed.history] == [True, False]
    for a, b in zip(memory.history, streamed.history, strict=True):
        assert a.alphas_normal == b.alphas_normal and a.alphas_reduce == b.alphas_reduce
        assert (a.train_loss, a.valid_loss, a.valid_acc) == (b.train_loss, b.valid_loss, b.valid_acc)
    assert memory.genotype == streamed.genotype


def test_a_resumed_streamed_search_continues_exactly(folder, tmp_path):
    config = _search_config(folder, data_loading="stream", loader_workers=1, data_split="folders")

    def save_first(record, search):
        if record.epoch == 1:
            search.save(tmp_path / "checkpoint.pt")

    whole = _quiet_search(config, on_epoch=save_first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = Search.resume(tmp_path / "checkpoint.pt", loader_workers=0)  # workers may change on resume
    with resumed:
        list(resumed.epochs())
    assert resumed.config.loader_workers == 0 and resumed.epoch == 2
    assert [r.alphas_normal for r in resumed.history] == [r.alphas_normal for r in whole.history]
    assert [r.valid_acc for r in resumed.history] == [r.valid_acc for r in whole.history]
    with pytest.raises(UserInputError, match="data_loading cannot change when resuming"):
        Search.resume(tmp_path / "checkpoint.pt", data_loading="memory")


def test_a_streamed_retraining_is_the_retraining_in_memory(folder):
    settings = dict(
        dataset="imagefolder",
        data_root=str(folder),
        image_size=16,
        init_channels=4,
        layers=3,
        auxiliary=False,
        batch_size=8,
        epochs=1,
        cutout=4,
        valid_portion=0.25,
        device="cpu",
    )
    genotype = KNOWN_GENOTYPES["PC_DARTS_cifar"]
    memory = run_training(TrainConfig(**settings), genotype)
    streamed = run_training(TrainConfig(**settings, data_loading="stream", loader_workers=1), genotype)
    a, b = memory.history[-1], streamed.history[-1]
    assert (a.train_loss, a.test_loss, a.test_acc) == (b.train_loss, b.test_loss, b.test_acc)
    assert a.valid_loss == b.valid_loss is not None


def test_a_file_that_does_not_decode_is_the_one_line_error_of_the_memory_loader(folder):
    stream = load_dataset("imagefolder", folder, image_size=16, loading="stream")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = Search(_search_config(folder, data_loading="stream", loader_workers=2), data=stream)
    broken = Path(stream.train.paths[5])
    broken.write_bytes(b"not an image")  # after loading: only a worker meets it
    with pytest.raises(DataError) as held:
        load_dataset("imagefolder", folder, image_size=16)
    assert str(held.value).startswith(f"imagefolder: cannot decode {broken} (")
    with pytest.raises(DataError) as streamed, search:
        list(search.epochs())
    assert str(streamed.value) == str(held.value) and "\n" not in str(streamed.value)
    assert multiprocessing.active_children() == []  # the failing loader stopped its workers


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"dataset": "cifar10", "data_loading": "stream"},
            "data_loading='stream': streams the files of an image folder, cifar10 has none; use data_loading='memory'",
        ),
        (
            {"dataset": "imagefolder", "data_loading": "stream"},
            "data_root=None: data_loading='stream' reads the images from a folder: pass --data-root",
        ),
        ({"loader_workers": -1}, "loader_workers=-1: Input should be greater than or equal to 0"),
    ],
)
@pytest.mark.parametrize("kind", [SearchConfig, TrainConfig])
def test_impossible_stream_settings_name_the_field(kind, changes, message):
    with pytest.raises(ConfigError) as err:
        kind(**changes)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_the_data_given_must_be_held_as_the_settings_say(folder):
    memory = load_dataset("imagefolder", folder, image_size=16)
    with pytest.raises(ConfigError, match=r"^data_loading='stream': the data given holds decoded images"):
        Search(_search_config(folder, data_loading="stream"), data=memory)
    with pytest.raises(DataError, match="loading='stream' reads image files, fashion_mnist_mini has none"):
        load_dataset("fashion_mnist_mini", loading="stream")


def test_the_command_line_has_the_flags(tmp_path, capsys):
    args = build_parser().parse_args(["--out", "x", "--data-loading", "stream", "--loader-workers", "3"])
    assert (args.data_loading, args.loader_workers) == ("stream", 3)
    with pytest.raises(SystemExit) as done:
        run_main(search_main, ["--out", str(tmp_path / "run"), "--dataset", "imagefolder", "--data-loading", "stream"])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and len(err) == 1 and err[0].startswith("error: data_root=None: data_loading='stream'")
    assert not (tmp_path / "run").exists()


def test_the_pipeline_benchmark_runs_at_tiny_sizes_and_writes_its_json(tmp_path):
    out = tmp_path / "pipeline.json"
    tiny = ["--classes", "2", "--per-class", "6", "--width", "60", "--height", "45", "--image-size", "32"]
    done = subprocess.run(
        [sys.executable, "bench/data_pipeline.py", *tiny, "--batch", "4", "--workers", "0", "2", "--device", "cpu"]
        + ["--gpu-images-per-s", "1000", "--json", str(out)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["complete"] and result["images"] == 12 and [r["workers"] for r in result["results"]] == [0, 2]
    assert all(r["images"] == 12 and r["images_per_s"] > 0 for r in result["results"])
    need = result["workers_needed"]
    assert need["measured_at_workers"] == 2 and need["workers"] == -(-1000 // need["per_worker_images_per_s"])
    assert f"needs {need['workers']} loader workers" in done.stdout
