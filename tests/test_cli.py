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


def test_run_writes_outputs_and_matches_the_api(tmp_path, capsys):
    import numpy as np

    import memfit

    x = np.random.default_rng(0).standard_normal((1, 49, 10, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, _ = _run(
        capsys,
        "run",
        "zoo:ds-cnn",
        "--input",
        str(tmp_path / "x.npy"),
        "--output",
        str(tmp_path / "y.npz"),
    )
    assert code == 0 and "y.npz" in out
    with np.load(tmp_path / "y.npz") as saved:
        expected = memfit.run(memfit.load("zoo:ds-cnn"), x)
        assert set(saved.files) == set(expected)
        for name, array in expected.items():
            np.testing.assert_array_equal(saved[name], array)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        ("shape", "has shape (1, 10, 49, 1)"),
        ("dtype", "dtype float64"),
    ],
)
def test_run_with_mismatched_input_writes_nothing(tmp_path, capsys, array, message):
    import numpy as np

    x = np.zeros((1, 10, 49, 1), np.float32) if array == "shape" else np.zeros((1, 49, 10, 1))
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    code, _, err = _run(
        capsys, "run", "zoo:ds-cnn", "--input", str(tmp_path / "x.npy"), "--output", str(out)
    )
    assert code == 2 and message in err and "expects (1, 49, 10, 1) float32" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "x.npy"]


def test_run_npz_with_unknown_input_name(tmp_path, capsys):
    import numpy as np

    np.savez(tmp_path / "x.npz", wrong=np.zeros((1, 49, 10, 1), np.float32))
    code, _, err = _run(
        capsys,
        "run",
        "zoo:ds-cnn",
        "--input",
        str(tmp_path / "x.npz"),
        "--output",
        str(tmp_path / "y.npy"),
    )
    assert code == 2 and "missing" in err


def test_inspect_prints_the_canonical_graph(capsys):
    code, out, _ = _run(capsys, "inspect", "zoo:resnet8")
    assert code == 0
    assert "conv2d(%input" in out or "conv2d(" in out
    assert "MACs" in out and "12,501,632" in out
