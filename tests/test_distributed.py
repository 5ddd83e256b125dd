"""One search on several processes (pcdarts_core.distributed): every batch split evenly, the processes' α/β and
weights identical after every step, outputs written once, exact resume on as many processes, and clear errors
for a batch that does not split or a resume on another number of processes. The runs use torchrun's gloo
backend on this CPU."""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from image_folders import folder_search_config, write_image_folder

from pcdarts_core import ConfigError, UserInputError
from pcdarts_core.checkpoint import load_checkpoint
from pcdarts_core.data import DeviceBatches
from pcdarts_core.distributed import SINGLE, Ranks
from pcdarts_core.search import Search

HERE = Path(__file__).parent


def _config(folder: Path, **changes):
    """The tiny search of the image folder, its architecture trained from the first step."""
    return folder_search_config(folder, **{"warmup_epochs": 0, **changes})


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("images"))


def _torchrun(processes: int, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node processes ...`` (a free port of its own), output captured."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=HERE)


def _batches(shard: tuple[int, int], n: int = 21, batch_size: int = 8, augment: bool = False) -> list:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    return list(
        DeviceBatches(
            images,
            torch.arange(n),
            batch_size=batch_size,
            mean=(0.0,),
            std=(1.0,),
            augment=augment,
            generator=torch.Generator().manual_seed(5),
            shard=shard,
        )
    )


def test_the_processes_split_every_batch_of_one_order_in_equal_shares():
    whole = _batches((0, 1))
    first, second = _batches((0, 2)), _batches((1, 2))
    assert [len(y) for _, y in whole] == [8, 8, 5]
    # the same order for both; each batch split into two equal halves; the tail's odd image left out
    assert [len(y) for _, y in first] == [len(y) for _, y in second] == [4, 4, 2]
    for (_, y), (x0, y0), (x1, y1) in zip(whole, first, second):
        assert torch.equal(torch.cat([y0, y1]), y[: len(y) - len(y) % 2])
        for x, labels in ((x0, y0), (x1, y1)):  # each process's images are those of its own labels
            assert torch.allclose(x[:, 0, 0, 0] * 255, labels.float())
    # a tail with fewer images than processes is left out: 20 images in batches of 6 over 3 processes
    assert [len(y) for _, y in _batches((2, 3), n=20, batch_size=6)] == [2, 2, 2]
    # each process draws its own augmentation: the same crops on both halves would correlate them
    crops = [_batches((r, 2), n=16, augment=True)[0][0] for r in (0, 1)]
    shifted = [x - x.amax() for x in crops]  # the images differ (their labels); compare where each crop cut
    assert not torch.equal(shifted[0] == shifted[0].amin(), shifted[1] == shifted[1].amin())


def test_a_batch_that_does_not_split_over_the_processes_is_refused(folder):
    with pytest.raises(ConfigError, match="batch_size"):
        _batches((0, 3))
    with pytest.raises(UserInputError, match=r"batch_size=8: cannot be split over 3 processes; use a multiple of 3"):
        Search(_config(folder), ranks=Ranks(0, 3))


def test_sync_bn_needs_gpus(folder):
    with pytest.raises(UserInputError, match="sync_bn: SyncBatchNorm runs on GPUs only"):
        Search(_config(folder, sync_bn=True), ranks=Ranks(0, 2))


def test_one_process_is_a_no_op():
    grads = [torch.randn(3), torch.randn(2, 2)]
    before = [g.clone() for g in grads]
    SINGLE.average(grads)
    SINGLE.check_same([("a", grads[0])], "α")
    assert all(torch.equal(a, b) for a, b in zip(grads, before))
    assert SINGLE.main and not SINGLE.several and Ranks.current() == SINGLE


def test_a_resume_on_another_number_of_processes_is_refused(folder, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = Search(_config(folder, epochs=2))
        next(search.epochs())
        search.save(tmp_path / "checkpoint.pt")
    assert load_checkpoint(tmp_path / "checkpoint.pt")["world_size"] == 1
    with pytest.raises(UserInputError, match=r"on 1 process\(es\), this one runs on 2: resume it with one process"):
        Search.resume(tmp_path / "checkpoint.pt", ranks=Ranks(0, 2))


@pytest.mark.slow
def test_two_processes_hold_the_same_alphas_at_every_step_and_resume_exactly(folder, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    straight.mkdir(), split.mkdir()
    script, settings = str(HERE / "distributed_search.py"), tmp_path / "config.json"
    settings.write_text(_config(folder).model_dump_json())
    for out, epochs, resume in ((straight, "2", ()), (split, "1", ()), (split, "2", ("--resume",))):
        if resume:
            first_epoch = {r: torch.load(split / f"rank{r}.pt")["steps"] for r in (0, 1)}
        done = _torchrun(2, script, str(settings), str(out), epochs, *resume)
        assert done.returncode == 0, done.stderr[-3000:]
    ran = {r: torch.load(straight / f"rank{r}.pt") for r in (0, 1)}
    steps = ran[0]["steps"]
    assert steps.shape[0] == 6  # 18 weight-half images in batches of 8: 3 steps per epoch, the tail 2 split 1 + 1
    # bit for bit the same α/β (first 252 numbers) and weights on both processes, after every step ...
    assert torch.equal(steps, ran[1]["steps"])
    arch = ran[0]["arch_numbers"]
    assert arch == 252
    # ... while they moved at every step
    assert ((steps[1:, :arch] - steps[:-1, :arch]).abs().amax(dim=1) > 0).all()
    # a search stopped after epoch 1 and resumed on 2 processes continues exactly
    assert torch.equal(first_epoch[0], steps[:3]) and torch.equal(first_epoch[1], steps[:3])
    resumed = {r: torch.load(split / f"rank{r}.pt")["steps"] for r in (0, 1)}
    assert torch.equal(resumed[0], steps[3:]) and torch.equal(resumed[1], steps[3:])
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert a["world_size"] == b["world_size"] == 2 and a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [r["valid_acc"] for r in a["history"]] == [r["valid_acc"] for r in b["history"]]


@pytest.mark.slow
def test_the_command_line_runs_under_torchrun_and_writes_once(folder, tmp_path):
    out = tmp_path / "search"
    flags = ["--dataset", "imagefolder", "--data-root", str(folder), "--image-size", "16", "--init-channels", "4"]
    flags += ["--layers", "3", "--k", "2", "--batch-size", "8", "--epochs", "1", "--warmup-epochs", "0"]
    flags += ["--device", "cpu", "--data-loading", "stream", "--loader-workers", "0", "--out", str(out)]
    done = _torchrun(2, "-m", "pcdarts_core.search", *flags)
    assert done.returncode == 0, done.stderr[-3000:]
    # the first process alone prints and writes
    printed = done.stdout + done.stderr
    assert printed.count("2 processes, epochs 1..1") == 1
    assert printed.count("epoch 1/1 ") == 1
    assert done.stdout.count("Genotype(") == 1, done.stdout
    with (out / "metrics.csv").open() as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1"]
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "genotype.json",
        "genotype.txt",
        "history.json",
        "metrics.csv",
    ]
    assert load_checkpoint(out / "checkpoint.pt")["world_size"] == 2
    # resumed by one process: refused, naming the way to resume, and nothing changed
    before = (out / "checkpoint.pt").read_bytes()
    alone = subprocess.run(
        [sys.executable, "-m", "pcdarts_core.search", "--resume", "--epochs", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert alone.returncode == 2
    assert "written by a search on 2 process(es), this one runs on 1: resume it with torchrun --nproc_per_node 2" in (
        alone.stderr
    )
    assert (out / "checkpoint.pt").read_bytes() == before
    # a batch that 3 processes cannot share: each says so, and the launcher fails
    bad = _torchrun(3, "-m", "pcdarts_core.search", *flags[:-1], str(tmp_path / "other"))
    assert bad.returncode != 0
    assert "batch_size=8: cannot be split over 3 processes" in bad.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_a_search_that_diverges_on_two_processes_says_so_once(folder, tmp_path):
    flags = ["--dataset", "imagefolder", "--data-root", str(folder), "--image-size", "16", "--init-channels", "4"]
    flags += ["--layers", "3", "--k", "2", "--batch-size", "8", "--epochs", "2", "--warmup-epochs", "0"]
    flags += ["--device", "cpu", "--lr", "1e12", "--grad-clip", "1e12", "--quiet", "--out", str(tmp_path / "s")]
    done = _torchrun(2, "-m", "pcdarts_core.search", *flags)
    assert done.returncode == 1
    # the processes' NaN weights are a divergence, not weights that differ between them
    assert done.stderr.count("error: search diverged in epoch 1: training loss is nan") == 1, done.stderr[-3000:]
    assert "this is a bug" not in done.stderr
