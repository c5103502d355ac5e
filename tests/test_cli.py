import subprocess
import sys

import pytest

from memfit.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_module_entry_point_prints_help():
    result = subprocess.run(
        [sys.executable, "-m", "memfit", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "inspect" in result.stdout and "run" in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frobnicate"], "invalid choice"),
        (["inspect"], "the following arguments are required: model"),
        (["inspect", "zoo:mobilenetv2", "--bogus"], "unrecognized arguments"),
        (["inspect", "missing.tflite"], "no such file"),
        (["inspect", "zoo:no-such-model"], "not a built-in model"),
        (["inspect", "zoo:x", "--input-shape", "input"], "expected NAME=D1,D2"),
        (["inspect", "zoo:x", "--input-shape", "input=1,-3"], "positive integers"),
    ],
)
def test_user_errors_exit_2_without_traceback(capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_unknown_extension(tmp_path, capsys):
    path = tmp_path / "model.txt"
    path.write_text("hello")
    code, _, err = _run(capsys, "inspect", str(path))
    assert code == 2 and "unknown model format .txt" in err


def test_directory_is_not_a_model(tmp_path, capsys):
    code, _, err = _run(capsys, "inspect", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_tflite_extension_without_flatbuffer(tmp_path, capsys):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"\x00" * 64)
    code, _, err = _run(capsys, "inspect", str(path))
    assert code == 2 and "not a TFLite flatbuffer" in err


def test_run_rejects_bad_output_name(tmp_path, capsys):
    code, _, err = _run(
        capsys, "run", "zoo:x", "--input", "x.npy", "--output", str(tmp_path / "y.txt")
    )
    assert code == 2 and "expected a .npy or .npz" in err
    assert not (tmp_path / "y.txt").exists()
