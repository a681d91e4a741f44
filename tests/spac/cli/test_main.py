"""The `spac` dispatcher: usage, unknown commands, and every command module it names."""
import importlib

from spac.cli.main import COMMANDS, main


def test_every_command_module_exposes_cli_main():
    for module, _ in COMMANDS.values():
        assert callable(importlib.import_module(module).cli_main)


def test_usage_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main([]) == 2


def test_unknown_command_is_one_line_and_exit_2(capsys):
    assert main(["nonsense"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"spac: error: unknown command 'nonsense' (choose from {', '.join(COMMANDS)})"]


def test_a_command_runs_through_run_main(tmp_path, capsys):
    assert main(["render", str(tmp_path / "out"), "--identities", "0", "--images-per-identity", "1"]) == 2
    assert capsys.readouterr().err.startswith("spac render: error: argument --identities:")
    assert main(["render", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: spac render")
