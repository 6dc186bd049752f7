"""The shared command-line layer on its own: sizes, output paths, run_cli's edges, the console's capture."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

from mobilelat.cli import ArgumentParser, raise_if_interrupted, run_cli
from mobilelat.console import Console
from mobilelat.errors import (EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USAGE, InputSizeError, OutputPathError,
                              UsageError)
from mobilelat.paths import check_output_dir, check_output_file, output_dir
from mobilelat.sizes import MAX_SIDE, MIN_SIDE, parse_input_size

pytestmark = pytest.mark.fast


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder nothing can be created in: permission bits for a user, a read-only mount for root."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    folder = Path("/sys")  # sysfs: root cannot create files in it
    with pytest.raises(OSError):
        (folder / "mobilelat-probe").mkdir()
    yield folder


@pytest.mark.parametrize("text, size", [("224", (224, 224)), ("256x320", (256, 320)), ("256X320", (256, 320)),
                                        (" 64 x 96 ", (64, 96)), (str(MIN_SIDE), (MIN_SIDE, MIN_SIDE)),
                                        (f"{MAX_SIDE}x{MIN_SIDE}", (MAX_SIDE, MIN_SIDE))])
def test_sizes_parse_n_and_hxw(text, size):
    assert parse_input_size(text) == size


@pytest.mark.parametrize("text", ["224x", "x224", "224x224x3", "abc", "", "-64", "1", "7", "31", "4097", "100000",
                                  "224,224", "224 224"])
def test_sizes_refuse_anything_else_with_one_rule(text):
    with pytest.raises(InputSizeError, match="--input-size"):
        parse_input_size(text)


def test_output_dir_checks_before_work_and_cleans_what_it_made(tmp_path, unwritable):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        check_output_dir(a_file)
    with pytest.raises(OutputPathError, match="lies under the file"):
        check_output_dir(a_file / "sub")
    with pytest.raises(OutputPathError, match="cannot write in"):
        check_output_dir(unwritable / "out")
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_file(tmp_path)
    assert list(tmp_path.iterdir()) == [a_file]  # the write probe left nothing
    # made folders go again when the block fails and leaves them empty; a folder holding a file stays
    with pytest.raises(KeyboardInterrupt), output_dir(tmp_path / "a" / "b" / "c"):
        raise KeyboardInterrupt
    assert not (tmp_path / "a").exists()
    with pytest.raises(RuntimeError), output_dir(tmp_path / "a" / "b") as made:
        (made / "kept").write_text("x")
        raise RuntimeError
    assert (tmp_path / "a" / "b" / "kept").exists()


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m demo")
    parser.add_argument("--runs", type=int, default=50, help="timed calls")
    parser.add_argument("--flag", action="store_true", help="a switch")
    parser.add_argument("--json", action="store_true", help="JSON")
    return parser


def test_run_cli_maps_usage_errors_to_one_line_and_json(capsys):
    def main(argv):
        _parser().parse_args(argv)
        raise UsageError("no such model 'x'")

    assert run_cli(main, []) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.err == "error: no such model 'x'\n" and captured.out == ""
    assert run_cli(main, ["--json"]) == EXIT_USAGE
    assert json.loads(capsys.readouterr().out) == {"error": "no such model 'x'", "exit_status": EXIT_USAGE}
    # argparse's own mistakes take the same road
    assert run_cli(main, ["--runs", "many"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: argument --runs: invalid int value: 'many'") and err.count("\n") == 1


def test_help_shows_defaults_worth_showing():
    text = _parser().format_help()
    assert "timed calls (default: 50)" in text
    assert "a switch (default" not in text  # a switch's False says nothing


def test_run_cli_lets_a_bug_keep_its_traceback():
    def main(argv):
        raise ValueError("an internal inconsistency")

    with pytest.raises(ValueError, match="internal inconsistency"):
        run_cli(main, [])


def test_a_real_sigint_is_one_line_and_130(capsys):
    def main(argv):
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the signal did not stop the command")

    previous = signal.getsignal(signal.SIGINT)
    assert run_cli(main, []) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted\n"
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is the command's only


def test_a_swallowed_sigint_still_stops_the_command(capsys):
    """As litert-torch does: a callback catches the KeyboardInterrupt; the recorded signal stops us after it."""
    def main(argv):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass  # the library's callback
        raise_if_interrupted()
        raise AssertionError("went on after Ctrl-C")

    assert run_cli(main, []) == EXIT_INTERRUPTED
    # ... and an error a library raised in its place is still Ctrl-C, not a converter failure
    def wrapped(argv):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt as error:
            raise RuntimeError("conversion failed") from error

    assert run_cli(wrapped, []) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted\ninterrupted\n"
    raise_if_interrupted()  # the record belongs to the command that saw it: a later one starts clean


def test_a_closed_pipe_ends_quietly(monkeypatch):
    def main(argv):
        raise BrokenPipeError(32, "Broken pipe")

    silenced = []
    monkeypatch.setattr("mobilelat.cli._silence_stdout", lambda: silenced.append(True))
    assert run_cli(main, []) == EXIT_BROKEN_PIPE and silenced == [True]


def test_capture_sends_python_and_c_chatter_to_a_log(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MOBILELAT_LOG_DIR", str(tmp_path / "logs"))
    console = Console(command="test")
    with console.capture():
        print("python stdout chatter")
        print("python stderr chatter", file=sys.stderr)
        os.write(1, b"C stdout chatter\n")
        os.write(2, b"C stderr chatter\n")
        console.print("our result")
        console.note("our progress")
        assert console.log_path is not None  # named while the command still runs (in its summary)
    captured = capfd.readouterr()
    assert captured.out == "our result\n" and captured.err == "our progress\n"
    log = console.log_path.read_text()
    for line in ("python stdout chatter", "python stderr chatter", "C stdout chatter", "C stderr chatter"):
        assert line in log
    # nothing said: no log kept
    quiet = Console(command="silent")
    with quiet.capture():
        pass
    assert quiet.log_path is None and [p.name for p in (tmp_path / "logs").iterdir()] == [console.log_path.name]


def test_verbose_shows_chatter_on_stderr_and_keeps_stdout_for_results(capfd):
    console = Console(verbose=True, json_mode=True)
    with console.capture():
        os.write(1, b"C stdout chatter\n")
        print("python stdout chatter")
        console.emit_json({"ok": True})
    captured = capfd.readouterr()
    assert json.loads(captured.out) == {"ok": True}
    assert "C stdout chatter" in captured.err and "python stdout chatter" in captured.err


def test_an_interrupted_capture_leaves_no_log(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILELAT_LOG_DIR", str(tmp_path))
    console = Console(command="interrupted")
    with pytest.raises(KeyboardInterrupt), console.capture():
        os.write(2, b"chatter\n")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_our_own_notes_are_not_chatter(tmp_path, monkeypatch, capfd):
    """A note of the registry ("'tf_efficientnetv2_b0' is efficientnetv2_b0 here") shows; a converter's log does not."""
    monkeypatch.setenv("MOBILELAT_LOG_DIR", str(tmp_path))
    console = Console(command="notes")
    with console.capture():
        logging.getLogger("models.registry").warning("note: %r is %s here", "tf_efficientnetv2_b0", "efficientnetv2_b0")
        os.write(2, b"I0000 converter chatter\n")
    err = capfd.readouterr().err
    assert err == "note: 'tf_efficientnetv2_b0' is efficientnetv2_b0 here\n"
    assert "I0000 converter chatter" in console.log_path.read_text() and "note:" not in console.log_path.read_text()
