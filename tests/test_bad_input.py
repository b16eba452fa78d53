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
