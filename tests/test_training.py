"""Retraining a genotype: learning, schedules, honest reporting, exact resume, the CLI, bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from pcdarts_core import (
    KNOWN_GENOTYPES,
    ConfigError,
    TrainConfig,
    Training,
    TrainingDiverged,
    UserInputError,
    random_genotype,
    run_training,
)
from pcdarts_core.checkpoint import load_checkpoint
from pcdarts_core.cli import run_main
from pcdarts_core.cli.train import main
from pcdarts_core.schedules import learning_rate

GENOTYPE = KNOWN_GENOTYPES["PC_DARTS_cifar"]

# A small network that trains in seconds per epoch on a 2-core CPU.
SMALL = dict(
    dataset="fashion_mnist_mini",
    init_channels=8,
    layers=4,
    batch_size=64,
    epochs=2,
    cutout=0,
    drop_path_prob=0.2,
    lr=0.05,
    device="cpu",
)


@pytest.fixture
def small_config() -> TrainConfig:
    return TrainConfig(**SMALL)


def test_defaults_are_the_cifar_protocol_and_imagenet_is_one_call_away():
    cifar = TrainConfig()
    assert (cifar.epochs, cifar.batch_size, cifar.lr, cifar.lr_min, cifar.lr_schedule) == (
        600,
        96,
        0.025,
        0.0,
        "cosine",
    )
    assert (cifar.momentum, cifar.weight_decay, cifar.init_channels, cifar.layers) == (0.9, 3e-4, 36, 20)
    assert (cifar.auxiliary, cifar.auxiliary_weight, cifar.cutout, cifar.drop_path_prob, cifar.grad_clip) == (
        True,
        0.4,
        16,
        0.3,
        5.0,
    )
    imagenet = TrainConfig.protocol("imagenet", data_root="/data/imagenet")
    assert (imagenet.network, imagenet.epochs, imagenet.batch_size, imagenet.lr, imagenet.warmup_epochs) == (
        "imagenet",
        250,
        1024,
        0.5,
        5,
    )
    assert (imagenet.lr_schedule, imagenet.weight_decay, imagenet.label_smoothing) == ("pcdarts_linear", 3e-5, 0.1)
    assert (imagenet.init_channels, imagenet.layers, imagenet.data_root) == (48, 14, "/data/imagenet")


def test_bf16_and_channels_last_are_on_by_default_on_a_gpu_only():
    from pcdarts_core.train import speed_options

    gpu, cpu = torch.device("cuda"), torch.device("cpu")  # no GPU needed: only the rule is checked
    assert speed_options(TrainConfig(), gpu) == (True, True)
    assert speed_options(TrainConfig(), cpu) == (False, False)
    assert speed_options(TrainConfig(precision="fp32", channels_last=False), gpu) == (False, False)
    assert speed_options(TrainConfig(precision="bf16", channels_last=True), cpu) == (True, True)


def test_learning_rate_schedules():
    # CIFAR: cosine from 0.025 to 0 over 600 epochs.
    assert learning_rate(0, lr=0.025, lr_min=0, epochs=600) == 0.025
    assert learning_rate(300, lr=0.025, lr_min=0, epochs=600) == pytest.approx(0.0125)
    # Plain linear decay, scaled by (epoch + 1) / 5 in 5 warm-up epochs.
    rates = [
        learning_rate(e, lr=0.5, lr_min=0, epochs=250, schedule="linear", warmup_epochs=5) for e in (0, 4, 5, 125, 249)
    ]
    assert rates == pytest.approx([0.5 * 1 / 5, 0.5 * (1 - 4 / 250), 0.5 * (1 - 5 / 250), 0.25, 0.5 / 250])
    # The PC-DARTS ImageNet script: linear to 0 at epoch 245, then lr * (250 - e) / (245 * 5).
    rates = [
        learning_rate(e, lr=0.5, lr_min=0, epochs=250, schedule="pcdarts_linear", warmup_epochs=5)
        for e in (0, 5, 200, 244, 245, 249)
    ]
    assert rates == pytest.approx([0.1, 0.5 * 240 / 245, 0.5 * 45 / 245, 0.5 / 245, 0.5 * 5 / 1225, 0.5 / 1225])


@pytest.mark.slow  # ~28 s: a real two-epoch retraining
def test_two_epoch_retrain_beats_chance_with_ramped_drop_path(small_config, mini_data):
    records = []
    result = run_training(
        small_config, GENOTYPE, data=mini_data, on_epoch=lambda record, training: records.append(record)
    )
    assert [r.epoch for r in records] == [1, 2]
    # Drop path ramps linearly from 0 toward 0.2: 0 in epoch 1, 0.1 in epoch 2.
    assert [r.drop_path_prob for r in records] == pytest.approx([0.0, 0.1])
    assert [r.lr for r in records] == pytest.approx([0.05, 0.05 * (1 + math.cos(math.pi / 2)) / 2])
    # 10 classes: chance is 0.10 ± 0.013 on the 500 test images.
    assert records[-1].test_acc > 0.4
    assert records[-1].train_loss < records[0].train_loss
    assert records[-1].valid_acc is None  # no validation split asked for
    # The reported accuracy is the final epoch's, never the best one.
    assert result.test_acc == records[-1].test_acc
    summary = result.summary()
    assert summary["test_acc"] == records[-1].test_acc and summary["epochs"] == 2 and summary["finished"]
    assert summary["parameters"] == result.cost.parameters > 0 and summary["multiply_adds"] > 0
    assert all(r.images_per_s > 0 and r.peak_memory_bytes > 0 for r in records)


def test_the_imagenet_protocol_trains_the_imagenet_network(mini_data):
    # The protocol's network, warm-up, decay and label smoothing at a size the CPU manages.
    config = TrainConfig.protocol(
        "imagenet",
        dataset="fashion_mnist_mini",
        image_size=None,
        init_channels=8,
        layers=3,
        batch_size=64,
        epochs=6,
        train_subset=128,
        device="cpu",
    )
    training = Training(config, KNOWN_GENOTYPES["PC_DARTS_image"], data=mini_data)
    assert type(training.model).__name__ == "NetworkImageNet"
    record = next(training.epochs())
    assert record.lr == pytest.approx(0.5 / 5)  # first of 5 warm-up epochs
    assert record.drop_path_prob == 0.0
    assert math.isfinite(record.train_loss) and 0 <= record.test_acc <= 1


def test_validation_split_is_held_out_of_training(small_config, mini_data):
    training = Training(small_config.replace(valid_portion=0.2, epochs=1, train_subset=500), GENOTYPE, data=mini_data)
    train, valid = training.split["train"], training.split["valid"]
    assert (len(train), len(valid)) == (400, 100)
    assert not set(train.tolist()) & set(valid.tolist())
    record = next(training.epochs())
    assert 0 <= record.valid_acc <= 1 and record.valid_loss > 0


def test_resume_continues_exactly(small_config, mini_data, tmp_path):
    config = small_config.replace(valid_portion=0.1, train_subset=400, epochs=2)
    straight = Training(config, GENOTYPE, data=mini_data)
    list(straight.epochs())

    first = Training(config, GENOTYPE, data=mini_data)
    next(first.epochs())
    first.save(tmp_path / "checkpoint.pt")
    del first
    torch.manual_seed(12345)  # whatever happened in between must not matter
    resumed = Training.resume(tmp_path / "checkpoint.pt", data=mini_data)
    assert resumed.epoch == 1 and resumed.genotype() == GENOTYPE
    list(resumed.epochs())

    assert [r.test_acc for r in resumed.history] == [r.test_acc for r in straight.history]
    assert [r.drop_path_prob for r in resumed.history] == [r.drop_path_prob for r in straight.history]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    # the trained weights in a new Training, evaluated: the last epoch's test loss and accuracy
    rebuilt = Training(config, GENOTYPE, data=mini_data)
    rebuilt.model.load_state_dict(straight.model.state_dict())
    loss, acc = rebuilt.evaluate_test()
    assert acc == straight.history[-1].test_acc and loss == pytest.approx(straight.history[-1].test_loss, abs=1e-6)


def test_resume_refuses_changed_settings_and_other_checkpoints(small_config, mini_data, tmp_path, tiny_config):
    training = Training(small_config.replace(epochs=1, train_subset=200), GENOTYPE, data=mini_data)
    training.save(tmp_path / "train.pt")
    with pytest.raises(UserInputError, match="lr cannot change when resuming"):
        Training.resume(tmp_path / "train.pt", data=mini_data, lr=0.1)
    assert load_checkpoint(tmp_path / "train.pt")["kind"] == "training"

    from pcdarts_core import Search

    Search(tiny_config, data=mini_data).save(tmp_path / "search.pt")
    with pytest.raises(UserInputError, match="written by a search, not a training"):
        Training.resume(tmp_path / "search.pt", data=mini_data)


def test_random_genotype_and_bf16_autocast_train_on_the_cpu(small_config, mini_data):
    config = small_config.replace(epochs=1, train_subset=128, precision="bf16", auxiliary=False)
    training = Training(config, random_genotype(3), data=mini_data)
    assert training.bf16 and not training.channels_last
    record = next(training.epochs())
    assert math.isfinite(record.train_loss) and 0 <= record.test_acc <= 1


def test_a_last_batch_of_one_image_is_dropped(small_config, mini_data):
    # 129 images in batches of 64: the last batch would hold one image, whose 1x1 auxiliary-head
    # maps batch norm cannot normalise. It is dropped (a different image each epoch).
    training = Training(small_config.replace(epochs=1, train_subset=129), GENOTYPE, data=mini_data)
    assert training.steps_per_epoch == 2
    steps = []
    next(training.epochs(on_step=lambda step, total: steps.append((step, total))))
    assert steps == [(1, 2), (2, 2)]


def test_data_without_a_test_split_and_cpu_channels_last_on_grey_images_are_refused(small_config, mini_data):
    import dataclasses

    from pcdarts_core import DataError

    with pytest.raises(DataError, match="has no test split"):
        Training(small_config, GENOTYPE, data=dataclasses.replace(mini_data, test=None))
    with pytest.raises(ConfigError, match="channels_last=True: on the CPU, one-channel images"):
        Training(small_config.replace(channels_last=True), GENOTYPE, data=mini_data)


def test_divergence_stops_the_run(small_config, mini_data, tmp_path):
    training = Training(small_config.replace(epochs=2, train_subset=128, lr=1e30), GENOTYPE, data=mini_data)
    with pytest.raises(TrainingDiverged, match="training diverged in epoch 1"):
        next(training.epochs())
    with pytest.raises(RuntimeError, match="unusable"):
        training.save(tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lr_min": 1.0}, "lr_min=1.0: must not exceed lr=0.025"),
        ({"warmup_epochs": 5, "epochs": 5}, "warmup_epochs=5: must be less than epochs=5"),
        ({"network": "imagenet", "init_channels": 7}, "init_channels=7: the ImageNet stem halves C"),
        ({"drop_path_prob": 1.0}, "drop_path_prob=1.0: Input should be less than 1"),
        ({"precision": "fp16"}, "precision='fp16': Input should be 'auto', 'fp32' or 'bf16'"),
        ({"epoch": 3}, "epoch=3: unknown setting; known settings: dataset,"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(changes, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**changes)
    assert str(err.value).startswith(message)


# --- command line -------------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    flags = []
    for key, value in {**SMALL, "epochs": 1, "train_subset": 256}.items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    return [*flags, *args]


def test_cli_trains_writes_outputs_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_cli("--genotype", "DARTS_V2", "--out", str(out), "--quiet")) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("final epoch 1: test acc ") and "M parameters" in printed
    assert {p.name for p in out.iterdir()} == {
        "checkpoint.pt",
        "config.json",
        "genotype.json",
        "genotype.txt",
        "metrics.csv",
        "summary.json",
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["genotype_text"] == KNOWN_GENOTYPES["DARTS_V2"].to_text()
    assert summary["epochs"] == 1 and 0 <= summary["test_acc"] <= 1 and summary["parameters"] > 0
    assert summary["finished"] and summary["epochs_planned"] == 1
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,lr,drop_path_prob,train_loss,train_acc,test_loss,test_acc") and len(rows) == 2

    with pytest.raises(UserInputError, match="already holds a retraining; pass --resume"):
        main(_cli("--genotype", "DARTS_V2", "--out", str(out)))
    with pytest.raises(UserInputError, match="leave --protocol out"):
        main(["--out", str(out), "--resume", "--protocol", "imagenet"])
    assert main(["--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--genotype", "PC_DARTS_v9"], "neither a known name"),
        (["--genotype", "Genotype(normal=[('conv_9x9', 0)])"], "missing field(s) normal_concat"),
        (
            [
                "--genotype",
                "Genotype(normal=[('conv_9x9', 0), ('skip_connect', 1)], normal_concat=[2], "
                "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])",
            ],
            "unknown operation 'conv_9x9'",
        ),
        (["--genotype", "DARTS_V2", "--lr-min", "9"], "lr_min=9.0: must not exceed lr=0.05"),
        (
            ["--genotype", "PC_DARTS_image", "--dataset", "imagefolder"],
            "imagefolder: data_root is not set: pass --data-root",
        ),
        ([], "--genotype: required"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, [*_cli(*args), "--out", str(out)])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not out.exists()


def test_cli_exits_1_when_the_retraining_diverges(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_cli("--genotype", "DARTS_V2", "--lr", "1e30", "--out", str(out), "--quiet")) == 1
    error = capsys.readouterr().err
    assert "training diverged in epoch 1" in error and "no epoch finished, nothing was saved" in error
    assert not (out / "checkpoint.pt").exists()


def test_cli_process_exits_2_on_a_bad_genotype(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pcdarts_core.train", "--genotype", "Genotype(normal=[", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: genotype ") and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
