"""memfit optimize, and the plan files it writes as run and analyze use them."""

import contextlib
import io
import json

import numpy as np
import pytest

from memfit.cli import main

MODEL = "zoo:resnet8-int8"


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _run_model(capsys, folder, output: str, *plan: str) -> int:
    """``memfit run`` on a seeded input saved in ``folder``, writing ``folder/output``."""
    x = np.random.default_rng(0).integers(-128, 128, (1, 32, 32, 3)).astype(np.int8)
    np.save(folder / "x.npy", x)
    argv = ["run", MODEL, "--input", str(folder / "x.npy"), "--output", str(folder / output)]
    return _run(capsys, *argv, *plan)[0]


@pytest.fixture(scope="module")
def optimized(tmp_path_factory):
    """One unconstrained optimization of the model, its plan file and JSON summary."""
    folder = tmp_path_factory.mktemp("optimize")
    plan = folder / "plan.json"
    out = io.StringIO()  # capsys is function-scoped: capture by hand
    with contextlib.redirect_stdout(out):
        code = main(["optimize", MODEL, "-o", str(plan), "--json"])
    assert code == 0
    return plan, json.loads(out.getvalue())


def test_optimize_json_names_the_plan(optimized):
    plan, summary = optimized
    assert summary["peak_bytes"] < summary["untiled_peak_bytes"]
    assert summary["fits_budget"] is True
    assert summary["mac_overhead"] >= 0
    assert summary["chains"], "no chain applied"
    for chain in summary["chains"]:  # tiling, and the int8 convolutions' primitives
        assert chain["method"] in ("fdt", "ffmt", "primitives") and chain["ops"]
    assert any(chain["method"] in ("fdt", "ffmt") for chain in summary["chains"])
    document = json.loads(plan.read_text())
    assert document["arena_bytes"] == summary["peak_bytes"]
    assert document["rewrites"] == summary["chains"]


def test_run_and_analyze_use_the_tiled_plan(optimized, tmp_path, capsys):
    plan, summary = optimized
    assert _run_model(capsys, tmp_path, "tiled.npy", "--plan", str(plan)) == 0
    assert _run_model(capsys, tmp_path, "untiled.npy") == 0
    np.testing.assert_array_equal(
        np.load(tmp_path / "tiled.npy"), np.load(tmp_path / "untiled.npy")
    )
    code, out, _ = _run(capsys, "analyze", MODEL, "--plan", str(plan), "--json")
    assert code == 0
    analysis = json.loads(out)
    assert analysis["peak_bytes"] == summary["peak_bytes"]
    assert len(analysis["ops"]) > 40  # the tiles are ops of their own


def test_zero_overhead_plans_recompute_nothing(capsys):
    code, out, _ = _run(capsys, "optimize", MODEL, "--max-mac-overhead", "0", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["mac_overhead"] == 0 and summary["extra_macs"] == 0


def test_a_budget_is_met_with_the_least_work(optimized, capsys):
    _, unconstrained = optimized
    budget = (unconstrained["peak_bytes"] + unconstrained["untiled_peak_bytes"]) // 2
    code, out, _ = _run(capsys, "optimize", MODEL, "--budget", str(budget), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["fits_budget"] and summary["peak_bytes"] <= budget


def test_an_impossible_budget_exits_3_and_writes_nothing(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    code, _, err = _run(capsys, "optimize", MODEL, "--budget", "1KiB", "-o", str(plan))
    assert code == 3
    assert "smallest peak found" in err and "the peak is set by" in err
    assert not plan.exists()
    assert "Traceback" not in err


def test_best_effort_writes_the_best_plan(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    code, _, err = _run(
        capsys, "optimize", MODEL, "--budget", "1KiB", "-o", str(plan), "--best-effort"
    )
    assert code == 3 and "best plan written" in err
    assert json.loads(plan.read_text())["rewrites"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--budget=-5KiB"], "96KiB"),
        (["--budget", "12 bananas"], "unknown unit"),
        (["--methods", "fdt,magic"], "unknown method"),
        (["--max-mac-overhead", "-0.5"], "fraction of 0 or more"),
        (["--max-mac-overhead", "lots"], "invalid float"),
        (["--best-effort"], "give -o"),
    ],
)
def test_bad_arguments_exit_2(capsys, argv, message):
    code, _, err = _run(capsys, "optimize", "zoo:ds-cnn-int8", *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_a_plan_for_another_model_is_refused(optimized, tmp_path, capsys):
    plan, _ = optimized
    np.save(tmp_path / "x.npy", np.zeros((1, 49, 10, 1), np.int8))
    code, _, err = _run(
        capsys,
        "run",
        "zoo:ds-cnn-int8",
        "--input",
        str(tmp_path / "x.npy"),
        "--output",
        str(tmp_path / "y.npy"),
        "--plan",
        str(plan),
    )
    assert code == 2 and "was made for model" in err
    assert not (tmp_path / "y.npy").exists()


def test_the_optimizer_weighs_mafat_and_measures(tmp_path, capsys):
    """With a budget every method is weighed; --measure times the chosen and untiled C."""
    plan = tmp_path / "plan.json"
    code, out, _ = _run(
        capsys,
        "optimize",
        MODEL,
        "--budget",
        "40000",
        "--measure",
        "--runs",
        "1",
        "--json",
        "-o",
        str(plan),
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["fits_budget"] and summary["peak_bytes"] <= 40000
    assert {c["source"] for c in summary["candidates"]} >= {"untiled", "mafat"}
    assert summary["predicted_latency_s"] > 0
    assert summary["latency_s"] > 0 and summary["untiled_latency_s"] > 0
    assert _run_model(capsys, tmp_path, "y.npy", "--plan", str(plan)) == 0


def test_a_plan_with_chosen_primitives_runs_and_verifies(tmp_path, capsys):
    """FDT and primitive selection together: the plan file carries both, and the generated C
    of the replayed plan matches the NumPy executor and TFLite Micro's reference."""
    plan = tmp_path / "plan.json"
    argv = ["optimize", "zoo:resnet8", "--methods", "fdt,primitives", "--max-mac-overhead", "0"]
    code, out, _ = _run(capsys, *argv, "--json", "-o", str(plan))
    assert code == 0
    summary = json.loads(out)
    assert summary["method"].endswith("+primitives")
    assert summary["chains"][-1]["method"] == "primitives"
    assert summary["peak_bytes"] < summary["untiled_peak_bytes"]
    code, out, _ = _run(capsys, "verify", "zoo:resnet8", "--plan", str(plan), "--json")
    assert code == 0
    verified = json.loads(out)
    assert verified["matches"] and verified["arena_bytes"] == summary["peak_bytes"]
