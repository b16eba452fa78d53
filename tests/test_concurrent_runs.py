"""Runs cannot overwrite each other: two `dcsched train` of one name and seed started together get
two run folders (each with its own last.ckpt), and two `dcsched evaluate --out DIR` never replace
each other's output: one writes DIR, the other exits 2 naming where its own output went (or refuses
up front when DIR is already there)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcsched.config import load_recipe
from dcsched.errors import ConfigError
from dcsched.io import fresh_dir
from dcsched.training.train import claim_run_dir

from test_agents import TINY

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, WANDB_MODE="disabled")


def test_a_run_folder_is_claimed_exclusively_and_a_clash_takes_the_next_name(tmp_path):
    cfg = load_recipe("recipes/sac.yaml", [f"out_dir={tmp_path}", "name=loop", "seed=3"])
    first = claim_run_dir(cfg, stamp="20261207-120000")
    second = claim_run_dir(cfg, stamp="20261207-120000")
    third = claim_run_dir(cfg, stamp="20261207-120000")
    assert first.name == "loop-s3-20261207-120000" and second.name == first.name + "-2" and third.name == first.name + "-3"
    assert all(p.is_dir() for p in (first, second, third))


def test_two_trainings_of_one_name_and_seed_started_together_get_two_folders(tmp_path):
    args = [sys.executable, "-m", "dcsched.cli", "train", "recipes/sac.yaml", *TINY, "trainer.total_frames=128",
            f"out_dir={tmp_path}", "name=twin", "seed=4", "eval.policies=null"]
    procs = [subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    folders = sorted(tmp_path.glob("twin-s4-*"))
    assert len(folders) == 2, folders
    assert all((f / "checkpoints" / "last.ckpt").is_file() and (f / "config.yaml").is_file() for f in folders)


def test_an_output_filled_by_another_process_meanwhile_is_not_replaced(tmp_path):
    target = tmp_path / "eval"
    with pytest.raises(ConfigError, match="written by another process") as err:
        with fresh_dir(target, key="--out") as tmp:
            (tmp / "mine.txt").write_text("this process")
            target.mkdir()  # the other process finishes first
            (target / "theirs.txt").write_text("the other process")
    assert err.value.key == "--out" and str(tmp_path / "eval-2") in str(err.value)
    assert (target / "theirs.txt").read_text() == "the other process" and not (target / "mine.txt").exists()
    assert (tmp_path / "eval-2" / "mine.txt").read_text() == "this process", "nothing is lost either"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval", "eval-2"]  # no hidden temporary folder left


def test_two_evaluations_into_one_folder_never_replace_each_other(tmp_path):
    out = tmp_path / "ev"
    args = [sys.executable, "-m", "dcsched.cli", "evaluate", "--policy", "local_only", "--scenario", "paper3",
            "--max-days", "2", "--out", str(out), "--no-plots"]
    procs = [subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert str(out) in loser and ("written by another process" in loser or "exists and is not empty" in loser)
    assert (out / "comparison.md").is_file()
    if "written by another process" in loser:  # the loser finished too: its output is kept beside
        assert (tmp_path / "ev-2" / "comparison.md").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder is left"


def _no_solving(*args, **kwargs):
    raise AssertionError("a day was solved before the output folder was checked")


def test_solve_refuses_a_non_empty_out_before_solving_anything(tmp_path, monkeypatch, capsys):
    import dcsched.baselines.lp_bound as lp_bound
    from dcsched.cli import main

    evaluation = tmp_path / "ev"
    evaluation.mkdir()
    (evaluation / "scenario.yaml").write_text("an evaluation's own scenario")
    monkeypatch.setattr(lp_bound, "solve_days", _no_solving)
    assert main(["solve", "--days", "2023-01-06", "--out", str(evaluation)]) == 2
    err = capsys.readouterr().err
    assert "exists and is not empty" in err and "--overwrite" in err
    assert (evaluation / "scenario.yaml").read_text() == "an evaluation's own scenario"
    a_file = tmp_path / "bounds"
    a_file.write_text("not a folder")
    assert main(["solve", "--days", "2023-01-06", "--out", str(a_file)]) == 2
    assert a_file.read_text() == "not a folder"


def test_solve_overwrite_replaces_only_with_complete_bounds(tmp_path):
    import json

    from dcsched.cli import main

    out = tmp_path / "b"
    assert main(["solve", "--days", "2023-01-06", "--out", str(out)]) == 0
    first = json.loads((out / "bounds.json").read_text())
    assert main(["solve", "--days", "2023-01-06", "--out", str(out)]) == 2  # refused: already there
    assert main(["solve", "--days", "2023-01-06", "--out", str(out), "--overwrite", "--max-days", "1"]) == 0
    again = json.loads((out / "bounds.json").read_text())
    assert [r["lp_bound_usd"] for r in again["per_day"]] == [r["lp_bound_usd"] for r in first["per_day"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
