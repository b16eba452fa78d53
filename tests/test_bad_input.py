"""Bad command-line input a new user types: one clear message, exit 2, nothing written."""

import pytest

from dcsched.cli import main


@pytest.mark.parametrize("days", ["", "2023-01-06,", ",2023-01-06", "2023-01-06,,2023-01-13"])
def test_an_empty_day_entry_is_named(days, tmp_path, capsys):
    rc = main(["evaluate", "--policy", "local_only", "--days", days, "--out", str(tmp_path / "o"), "--no-plots"])
    assert rc == 2 and "empty entry" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", [
    ["evaluate", "--policy", "local_only", "--days", "2023-01-06", "--no-plots", "--out"],
    ["solve", "--days", "2023-01-06", "--out"],
    ["train", "recipes/quick/sac.yaml", "trainer.total_frames=64", "out_dir="],
])
def test_an_unwritable_output_folder_is_a_usage_error(command, tmp_path, capsys):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    target = str(in_the_way / "out")
    argv = command[:-1] + [command[-1] + target] if command[-1].endswith("=") else command + [target]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write" in err and str(in_the_way) in err
    assert in_the_way.read_text() == "not a folder" and sorted(tmp_path.iterdir()) == [in_the_way]


# ---------------------------------------------------------------- issue #44, items 5 and 6
@pytest.mark.parametrize("argv,key", [
    (["train", "quick/sac", "network.hidden_sizes=[64,64"], "network.hidden_sizes"),  # YAML that does not parse
    (["train", "quick/sac", "seed=100000000000000000000"], "seed"),  # overflowed torch.manual_seed
    (["train", "quick/sac", "optim.lr_actor=nan"], "optim.lr_actor"),  # an IndexError deep in the kernels
    (["train", "quick/sac", "agent.gamma=inf"], "agent.gamma"),
    (["train", "quick/sac", "trainer.total_frames=1e12"], "trainer.total_frames"),  # years of training
    (["train", "quick/sac", "name=../x"], "name"),  # a run folder outside out_dir
    (["evaluate", "--policy", "local_only", "--days", "2023-01-06,2023-01-06", "--no-plots"], "days"),
    (["experiment", "sac_temperature", "only=[", "wandb_mode=disabled"], "only"),  # not a regex
    (["experiment", "sac_temperature", "only=(paper3", "wandb_mode=disabled"], "only"),
    (["experiment", "sac_temperature", "seeds=[]", "wandb_mode=disabled"], "seeds"),  # a report with no learned row
])
def test_bad_values_exit_2_naming_the_key_without_a_traceback(argv, key, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"key '{key}'" in err and "command line" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir()), "a refused command writes nothing"


def test_string_values_are_taken_verbatim_not_as_yaml():
    """A path that looks like a YAML list or holds ' #' is a path: not a parse error, not cut short."""
    from dcsched.config import load_recipe

    cfg = load_recipe("quick/sac", ["out_dir=runs/[v3] #1", "logger.project=a #b"])
    assert cfg.out_dir == "runs/[v3] #1" and cfg.logger.project == "a #b"


def test_a_yaml_alias_bomb_and_a_huge_recipe_are_refused_before_parsing(tmp_path):
    """Nine nested aliases in 300 bytes expand to 9^9 nodes (the loader hung); a 10 MB recipe took minutes."""
    from dcsched.config import YAML_MAX_BYTES, load_recipe
    from dcsched.errors import ConfigError

    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("scenario: paper3\n" + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="anchors and aliases") as err:
        load_recipe(bomb)
    assert err.value.source == str(bomb)
    huge = tmp_path / "huge.yaml"
    huge.write_text("scenario: paper3\n" + "# padding\n" * (YAML_MAX_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match="too large"):
        load_recipe(huge)


def test_stale_temporary_folders_of_killed_commands_are_removed(tmp_path):
    """A command killed with SIGKILL leaves .OUT.tmp-PID behind; the next command writing OUT removes
    those whose process is gone, and keeps a running one's."""
    import subprocess

    from dcsched.io import fresh_dir

    dead = subprocess.Popen(["true"])
    dead.wait()  # its PID is now free
    alive = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / f".ev.tmp-{dead.pid}").mkdir()
        (tmp_path / f".ev.tmp-{dead.pid}" / "half.csv").write_text("half-written")
        (tmp_path / f".ev.tmp-{alive.pid}").mkdir()
        with fresh_dir(tmp_path / "ev") as tmp:
            (tmp / "done.txt").write_text("complete")
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == [f".ev.tmp-{alive.pid}", "ev"], names
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.parametrize("argv", [
    ["evaluate", "--policy", "local_only", "--days", "2023-01-06", "--no-plots", "scenario.dcs.0.data.prices=nope.csv"],
    ["train", "quick/sac", "scenario.dcs.0.data.prices=nope.csv"],
])
def test_a_missing_data_file_named_by_an_override_blames_the_command_line(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "command line: key 'scenario.dcs.0.data.prices'" in err and "nope.csv" in err and "paper3.yaml" not in err


def test_a_folder_given_as_a_data_file_is_named_a_folder(tmp_path, capsys):
    argv = ["evaluate", "--policy", "local_only", "--days", "2023-01-06", "--no-plots", "--out", str(tmp_path / "ev"),
            f"scenario.dcs.0.data.prices={tmp_path}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"command line: key 'scenario.dcs.0.data.prices': file '{tmp_path}' is a folder, not a file" in err


def test_every_experiment_cell_name_is_an_accepted_run_name():
    """The experiment layer trains each cell with name=<its folder> ("paper3__eta=0.2__DRESS-SAC__s0"):
    the folder-name rule that refuses name=../x must accept all of them (it once refused '=' and
    broke the quick tier of every sweep; CI caught it)."""
    import re

    from dcsched.config import RUN_NAME_PATTERN, load_recipe
    from dcsched.errors import ConfigError
    from dcsched.experiments.spec import available_experiments, expand, load_experiment

    names = {spec.dirname for exp in available_experiments() for tier in ("quick", "full")
             for spec in expand(load_experiment(exp, [f"tier={tier}"])) if spec.kind == "train"}
    assert any("=" in n for n in names), "the sweeps' cells carry their setting in the name"
    refused = sorted(n for n in names if not re.fullmatch(RUN_NAME_PATTERN, n))
    assert refused == []
    cfg = load_recipe("recipes/dress_sac.yaml", ["name=paper3__eta=0.2__DRESS-SAC__s0"])
    assert cfg.name == "paper3__eta=0.2__DRESS-SAC__s0"
    for bad in ("../x", "a/b", ".hidden", "-x", "a b"):
        with pytest.raises(ConfigError, match="is not a folder name"):
            load_recipe("recipes/sac.yaml", [f"name={bad}"])
