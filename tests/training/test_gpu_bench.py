"""benchmarks/gpu_bench.py: every row of the multi-device table trains, on logical CPU devices."""

import importlib.util
import math
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TINY = ["--set", "model.adapter_units=16", "--set", "model.hidden_units=8", "--set", "model.attention_units=8"]


@pytest.mark.slow
def test_every_row_trains_and_reports_what_really_ran(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_bench", BENCHMARKS / "gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--work-dir", str(tmp_path), "--clips", "128", "--epochs", "2", "--feature-dim", "32", "--peak-seconds", "0.3",
                         *TINY])

    rows = report["rows"]
    assert list(rows) == ["baseline", "all_devices", "mixed_float16", "xla"]
    assert [row["replicas"] for row in rows.values()] == [1, 2, 2, 2]  # no GPU here: 2 logical CPU devices
    assert [row["precision"] for row in rows.values()] == ["float32", "float32", "mixed_float16", "mixed_float16"]
    assert [row["global_batch"] for row in rows.values()] == [16, 32, 64, 64]
    # XLA cannot place replicas' variables on CPU devices: the row trains without it and says so.
    assert rows["xla"]["xla"] is False and any("XLA is not supported" in note for note in rows["xla"]["notes"])
    assert rows["baseline"]["ratio_vs_baseline"] == 1.0
    for row in rows.values():
        assert row["samples_per_second"] > 0 and math.isfinite(row["final_loss"])
        # The training FLOP rate (3x forward FLOPs x samples/s) over the CPU's measured peak in the
        # row's format; the tiny model here makes it small, so recompute rather than bound it.
        peak = report["matmul_peak_gflops"]["cpu"][row["precision"].removeprefix("mixed_")]
        assert peak > 0 and row["fraction_of_peak"] == round(
            3 * row["flops_per_clip"] * row["samples_per_second"] / 1e9 / peak, 3), row
    assert set(report["matmul_peak_gflops"]["cpu"]) == {"float32", "float16"}
    table = (tmp_path / "gpu_bench.md").read_text()
    assert table.count("\n| ") == 5 and "logical CPU devices" in table and "fraction of peak" in table  # header + 4 rows
    assert (tmp_path / "gpu_bench.json").is_file()


def test_one_epoch_is_refused_because_it_is_not_timed(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_bench", BENCHMARKS / "gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with pytest.raises(SystemExit):
        bench.main(["--work-dir", str(tmp_path), "--epochs", "1"])
    assert "--epochs must be at least 2" in capsys.readouterr().err
