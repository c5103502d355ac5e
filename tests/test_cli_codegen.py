"""``memfit codegen``, ``verify`` and ``bench`` from the command line: what they write and
print, their exit codes, and what they refuse."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from memfit.cli import main
from memfit.codegen.plan import plan_for_c
from memfit.frontends import load_model
from memfit.planning import plan_memory
from memfit.planning.plan_file import fingerprint, plan_to_json, save_plan
from memfit.tiling.fdt import apply_fdt
from tests.helpers import SHARED_MODELS
from tests.onnx_helpers import make_model, save

KWS = str(SHARED_MODELS / "mlperf_tiny_kws_int8.tflite")
ZOO = "zoo:ds-cnn-int8"

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="no C compiler"
)


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- codegen -------------------------------------------------------------------------------


def test_codegen_writes_a_buildable_directory(tmp_path, capsys):
    out = tmp_path / "kws"
    code, text, err = _run(capsys, "codegen", KWS, "-o", out)
    assert code == 0, err
    name = "mlperf_tiny_kws_int8"
    expected = {f"{name}.h", f"{name}.c", f"{name}_weights.c", f"{name}_weights.h", "main.c"}
    assert expected | {"Makefile", "memfit_runtime.h"} <= {p.name for p in out.iterdir()}
    assert "arena: " in text and "make -C" in text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_codegen_name_option(tmp_path, capsys):
    code, _, err = _run(capsys, "codegen", ZOO, "-o", tmp_path / "out", "--name", "My Net")
    assert code == 0, err
    assert (tmp_path / "out" / "my_net.h").read_text().count("int my_net_run(") == 2


def test_codegen_refuses_an_existing_directory_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = _run(capsys, "codegen", ZOO, "-o", out)
    assert code == 2 and "already exists" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_codegen_refuses_a_plan_for_another_model(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    code, _, err = _run(capsys, "analyze", ZOO, "-o", plan)
    assert code == 0, err
    code, _, err = _run(capsys, "codegen", "zoo:resnet8-int8", "--plan", plan, "-o", tmp_path / "c")
    assert code == 2 and "was made for model" in err
    assert not (tmp_path / "c").exists()


def test_codegen_refuses_a_plan_without_the_kernels_workspace(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    _run(capsys, "analyze", ZOO, "-o", plan)  # the NumPy executor's plan
    code, _, err = _run(capsys, "codegen", ZOO, "--plan", plan, "-o", tmp_path / "c")
    assert code == 2 and "workspace" in err
    assert not (tmp_path / "c").exists()


def _tiled_plan(tmp_path: Path) -> Path:
    """A plan file with an FDT rewrite, made for code generation."""
    graph = load_model(ZOO)
    tiled = graph.copy()
    record = apply_fdt(tiled, ["conv1", "block1/depthwise"], 4).record
    path = tmp_path / "tiled.json"
    save_plan(path, plan_to_json(tiled, plan_for_c(tiled), fingerprint(graph), [record]))
    return path


def test_a_tiled_plan_is_generated_and_verified(tmp_path, capsys):
    plan = _tiled_plan(tmp_path)
    code, _, err = _run(capsys, "codegen", ZOO, "--plan", plan, "-o", tmp_path / "c")
    assert code == 0, err
    assert "conv1.p3" in (tmp_path / "c" / "ds_cnn_int8.c").read_text()
    code, text, err = _run(capsys, "verify", ZOO, "--plan", plan, "--json")
    assert code == 0, err
    assert json.loads(text)["bit_exact"] is True


# ---- verify --------------------------------------------------------------------------------


def test_verify_json_against_tflite_micro(capsys):
    code, text, err = _run(capsys, "verify", KWS, "--json", "--seeds", "2")
    assert code == 0, err
    result = json.loads(text)
    assert result["matches"] is True and result["bit_exact"] is True
    assert result["no_heap"] is True and result["seeds"] == [0, 1]
    assert result["arena_bytes"] > 0 and result["compiler"]
    assert set(result["against"]) == {"numpy", "tflite-micro"}


def test_verify_onnx_against_onnxruntime_in_nchw(tmp_path, capsys):
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["y"], ["z"]),
    ]
    initializers = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
    }
    path = save(make_model(nodes, {"x": (1, 3, 6, 5)}, ["z"], initializers), tmp_path)
    code, text, err = _run(capsys, "verify", path, "--json")
    assert code == 0, err
    result = json.loads(text)
    assert result["matches"] is True and "onnxruntime" in result["against"]
    assert result["max_abs_diff"] < 1e-4
    code, text, err = _run(capsys, "codegen", path, "-o", tmp_path / "c")
    header = (tmp_path / "c" / "model.h").read_text()
    assert "float [1, 3, 6, 5] NCHW" in header and "float [1, 4, 6, 5] NCHW" in header


def test_verify_exits_1_when_the_outputs_differ(monkeypatch, capsys):
    import memfit.codegen.verify as verify_module

    real = verify_module.run_numpy

    def off_by_one(*args, **kwargs):
        return {name: value + 1 for name, value in real(*args, **kwargs).items()}

    monkeypatch.setattr(verify_module, "run_numpy", off_by_one)
    code, text, _ = _run(capsys, "verify", ZOO)
    assert code == 1
    assert "vs numpy" in text and "DIFFERS" in text


def test_verify_without_a_compiler_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    code, _, err = _run(capsys, "verify", ZOO)
    assert code == 2 and "no C compiler found" in err


def test_compiler_errors_exit_2_with_the_first_lines(monkeypatch, tmp_path, capsys):
    fake = tmp_path / "broken-cc"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "broken-cc 1.0"; exit 0; fi\n'
        'echo "model.c:1:1: error: this compiler refuses everything" >&2\n'
        "exit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CC", str(fake))
    code, _, err = _run(capsys, "verify", ZOO)
    assert code == 2
    assert "the C compiler failed" in err and "refuses everything" in err


# ---- bench ---------------------------------------------------------------------------------


def test_bench_json_beside_tflite_micro(capsys):
    code, text, err = _run(capsys, "bench", KWS, "--json", "--runs", "3")
    assert code == 0, err
    result = json.loads(text)
    assert result["latency_s"] > 0 and result["tflm_latency_s"] > 0
    assert len(result["run_seconds"]) == 3 == len(result["tflm_run_seconds"])
    kinds = [op["kind"] for op in result["per_op"]]
    assert kinds.count("conv2d") == 5 and kinds.count("depthwise_conv2d") == 4
    assert all(op["seconds"] > 0 for op in result["per_op"])
    assert sum(op["macs"] for op in result["per_op"]) > 2_000_000


def test_bench_table(capsys):
    code, text, err = _run(capsys, "bench", ZOO, "--runs", "2")
    assert code == 0, err
    assert "median" in text and "conv2d" in text


def test_bench_rejects_zero_runs(capsys):
    code, _, err = _run(capsys, "bench", ZOO, "--runs", "0")
    assert code == 2 and "--runs" in err


def test_plans_for_c_include_the_workspace_numpy_plans_do_not():
    graph = load_model(ZOO)
    convolutions = {op.name for op in graph.ops if op.kind == "conv2d"}
    assert convolutions <= set(plan_for_c(graph.copy()).scratch_offsets)
    numpy_plan = plan_memory(graph.copy())
    # the NumPy plan has scratch only for the one-block temporary of pointwise in place
    with_scratch = convolutions & set(numpy_plan.scratch_offsets)
    assert with_scratch == {n for n, e in numpy_plan.in_place.items() if e.kind == "pointwise"}
    for name in with_scratch:
        assert numpy_plan.arena.temporaries[name] == numpy_plan.scratch_offsets[name]


def test_generated_program_runs_standalone(tmp_path, capsys):
    """The Makefile builds the example, which reads and writes raw binary files."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    out = tmp_path / "c"
    assert _run(capsys, "codegen", ZOO, "-o", out)[0] == 0
    import subprocess

    subprocess.run(["make", "-C", str(out)], check=True, capture_output=True)
    x = np.random.default_rng(0).integers(-128, 128, (1, 49, 10, 1)).astype(np.int8)
    (tmp_path / "x.bin").write_bytes(x.tobytes())
    program = out / "ds_cnn_int8_main"
    result = subprocess.run(
        [program, tmp_path / "x.bin", tmp_path / "y.bin", "--repeat", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.count("run_seconds") == 2
    from memfit import api

    (expected,) = api.run(load_model(ZOO), x).values()
    got = np.fromfile(tmp_path / "y.bin", np.int8).reshape(expected.shape)
    np.testing.assert_array_equal(got, expected)
    bad = subprocess.run([program, tmp_path / "x.bin"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr
    assert os.access(program, os.X_OK)
