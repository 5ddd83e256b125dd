"""Bad specs, genotypes and command lines, as a table: each exits with code 2 and one line on stderr
that names the field (or flag) and says the fix, and leaves nothing behind. Most run the CLIs
in-process (``run_main``, as ``python -m`` does); a few run as real subprocesses for the real exit code.
(The spec validator's own table is in test_orchestrator_spec.py; these cases are other ones.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow_server import free_port

from orchestrator.run import main as study_main
from pcdarts_core.cli import run_main
from pcdarts_core.cli.search import main as search_main
from pcdarts_core.cli.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
SPEC = {
    "name": "tiny",
    "dataset": {"name": "fashion_mnist_mini", "train_subset": 128},
    "search": {"seed": [0, 1], "k": [2, 4], "init_channels": 4, "layers": 3, "epochs": 1, "warmup_epochs": 0},
    "retrain": {"seeds": [0], "init_channels": 4, "layers": 3, "epochs": 1},
}
CLOSED_PORT = free_port()
GARBAGE_OP = (
    "Genotype(normal=[('no_such_op', 0), ('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1)], "
    "normal_concat=[2, 3], reduce=[('max_pool_3x3', 0), ('skip_connect', 1), ('skip_connect', 0), "
    "('skip_connect', 1)], reduce_concat=[2, 3])"
)


def _changed(**sections):
    raw = json.loads(json.dumps(SPEC))
    for path, value in sections.items():
        node = raw
        *parents, last = path.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return raw


# (id, CLI, spec dict / raw YAML text / None, extra arguments, words the line must hold: the field and the fix)
CASES = [
    ("spec-missing", "study", None, ["--spec-file", "absent.yaml"], ["absent.yaml: no such file", "give a study YAML"]),
    ("yaml-syntax", "study", "name: [tiny\n", [], ["not valid YAML"]),
    ("yaml-not-mapping", "study", "- tiny\n", [], ["top level must be a mapping"]),
    ("unknown-key-in-section", "study", _changed(select__topp=2), [], ["select.topp", "unknown key", "spelling"]),
    ("wrong-type", "study", _changed(select__top="two"), [], ["select.top", "valid integer", "'two'"]),
    ("name-wrong-type", "study", _changed(name=42), [], ["name", "valid string"]),
    (
        "k-not-dividing-c",
        "study",
        _changed(search__init_channels=6),
        [],
        ["search.k", "K must divide C=6", "use one of 1, 2, 3, 6"],
    ),
    ("empty-grid", "study", _changed(search__seed=[]), [], ["search.seed", "empty list", "at least one value"]),
    (
        "negative-retrain-epochs",
        "study",
        _changed(retrain__epochs=-1),
        [],
        ["retrain.epochs", "greater than or equal to 1"],
    ),
    ("unknown-dataset", "study", _changed(dataset={"name": "svhn"}), [], ["dataset.name", "svhn", "cifar10"]),
    (
        "missing-data-root",
        "study",
        _changed(dataset={"name": "imagefolder", "root": "/nonexistent/images"}),
        [],
        ["dataset", "/nonexistent/images"],
    ),
    ("repeated-retrain-seeds", "study", _changed(retrain__seeds=[0, 0]), [], ["retrain.seeds", "list each seed once"]),
    (
        "zero-cpus",
        "study",
        _changed(resources={"cpus_per_trial": 0}),
        [],
        ["resources.cpus_per_trial", "greater than 0"],
    ),
    (
        "negative-retries",
        "study",
        _changed(resources={"max_failures": -1}),
        [],
        ["resources.max_failures", "greater than or equal to 0"],
    ),
    (
        "negative-baselines",
        "study",
        _changed(baseline={"count": -2}),
        [],
        ["baseline.count", "greater than or equal to 0"],
    ),
    ("unknown-select-per", "study", _changed(select={"per": "everything"}), [], ["select.per", "'study' or 'setting'"]),
    (
        "zero-image-size",
        "study",
        _changed(dataset={"name": "fashion_mnist_mini", "image_size": 0}),
        [],
        ["dataset.image_size", "greater than or equal to 1"],
    ),
    ("set-bad-yaml", "study", SPEC, ["--set", "search.k=[1,"], ["--set: search.k", "not a YAML value"]),
    ("set-no-key", "study", SPEC, ["--set", "=5"], ["--set", "KEY.PATH=VALUE"]),
    ("set-unknown-key", "study", SPEC, ["--set", "search.epochz=3"], ["search.epochz", "unknown setting", "known:"]),
    ("unknown-flag", "study", SPEC, ["--epochs", "3"], ["unrecognized arguments: --epochs 3", "--help"]),
    (
        "ray-address-unreachable",
        "study",
        SPEC,
        ["--set", f"ray.address=127.0.0.1:{CLOSED_PORT}"],
        ["ray.address", "nothing answers there", "ray start --head", "fix ray.address"],
    ),
    ("ray-address-malformed", "study", SPEC, ["--set", "ray.address=headnode"], ["ray.address", "host:port"]),
    (
        "ray-client-address",
        "study",
        SPEC,
        ["--set", "ray.address=ray://head:10001"],
        ["ray.address", "Ray Client addresses are not supported", "ray.address: auto"],
    ),
    ("ray-zero-cpus", "study", SPEC, ["--set", "ray.num_cpus=0"], ["ray.num_cpus", "greater than or equal to 1"]),
    (
        "resume-without-study",
        "study",
        SPEC,
        ["--resume"],
        ["--resume", "study.json does not exist", "run without --resume"],
    ),
    ("genotype-garbage", "train", None, ["--genotype", "garbage"], ["genotype", "garbage"]),
    ("genotype-code", "train", None, ["--genotype", "__import__('os').getcwd()"], ["genotype"]),
    (
        "genotype-unknown-op",
        "train",
        None,
        ["--genotype", GARBAGE_OP],
        ["unknown operation 'no_such_op'", "use one of"],
    ),
    ("search-k-not-dividing-c", "search", None, ["--k", "3", "--init-channels", "4"], ["k=3", "K must divide C=4"]),
    ("search-negative-epochs", "search", None, ["--epochs", "-1"], ["epochs", "greater than or equal to 1"]),
    (
        "search-resume-nothing",
        "search",
        None,
        ["--resume"],
        ["--resume", "checkpoint.pt does not exist", "run without --resume"],
    ),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _argv(tmp_path: Path, cli: str, spec, extra: list[str]) -> list[str]:
    out = str(tmp_path / "out")
    if cli != "study":
        return [*extra, "--out", out, "--quiet", "--dataset", "fashion_mnist_mini", "--train-subset", "64"]
    if extra[:1] == ["--spec-file"]:
        return [str(tmp_path / extra[1]), "--out", out]
    path = tmp_path / "spec.yaml"
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
    return [str(path), "--out", out, *extra]


MAINS = {"study": study_main, "search": search_main, "train": train_main}


@pytest.mark.parametrize(("cli", "spec", "extra", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_behind(tmp_path, monkeypatch, capsys, cli, spec, extra, words):
    monkeypatch.chdir(tmp_path)
    argv = _argv(tmp_path, cli, spec, extra)
    before = _tree(tmp_path)
    with pytest.raises(SystemExit) as done:
        run_main(MAINS[cli], argv)
    err = capsys.readouterr().err
    assert done.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err, (word, err)
    assert _tree(tmp_path) == before  # nothing written, not even the output folder


def test_table_has_at_least_20_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 20


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["-m", "orchestrator.run", "absent.yaml"], "absent.yaml: no such file"),
        (
            ["-m", "orchestrator.run", "{spec}", "--set", f"ray.address=127.0.0.1:{CLOSED_PORT}", "--out", "{out}"],
            "ray.address",
        ),
        (["-m", "pcdarts_core.train", "--genotype", "garbage", "--out", "{out}"], "genotype"),
    ],
    ids=["study-missing-spec", "study-unreachable-ray", "train-bad-genotype"],
)
def test_bad_input_real_exit_code(tmp_path, argv, words):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    argv = [a.format(spec=spec, out=tmp_path / "out") for a in argv]
    done = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_resume_with_another_spec_or_an_existing_study_leaves_the_study_as_it_was(tmp_path, capsys):
    from orchestrator.spec import parse_spec
    from orchestrator.study import Study

    out = tmp_path / "study"
    Study.create(out, parse_spec(SPEC), SPEC)  # spec.yaml and study.json, as a started study has
    saved = {p.name: p.read_bytes() for p in out.iterdir()}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    for extra, words in (
        (
            ["--resume", "--set", "search.epochs=3"],
            ["--resume: search.epochs: differs from the study", "resume with the same spec"],
        ),
        ([], [f"--out {out}: already holds a study", "pass --resume"]),
    ):
        with pytest.raises(SystemExit) as done:
            run_main(study_main, [str(spec), "--out", str(out), *extra])
        err = capsys.readouterr().err
        assert done.value.code == 2 and err.count("\n") == 1, err
        assert all(word in err for word in words), err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == saved
