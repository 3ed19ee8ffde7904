"""Tests for the skcl-benchmark command line (skcl.benchmark)."""

import csv
import importlib.util
import json
import sys

import numpy as np
import pytest

from skcl import benchmark
from skcl.benchmark import FAMILIES, _registry, main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _read_csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One --quick run of every strategy, shared by the tests that read its files."""
    out = tmp_path_factory.mktemp("quick")
    assert main(["--quick", "--out", str(out)]) == 0
    return out


def test_quick_run_writes_every_strategy_and_month(quick_run, capsys):
    names = list(_registry())
    rows = _read_csv(quick_run / "results.csv")
    cells = {(r["strategy"], r["train_month"], r["eval_month"]) for r in rows}
    months = [str(m) for m in range(4)]  # --quick: a 4-month stream
    assert cells == {(n, t, e) for n in names for t in months for e in months}
    assert len(rows) == len(cells)
    assert all(0 <= float(r["score"]) <= 1 for r in rows)

    summary = json.loads((quick_run / "summary.json").read_text())
    assert [row["strategy"] for row in summary["summary"]] == names
    assert summary["reference"] == "retrain" and summary["metric"] == "accuracy"
    assert summary["months"] == list(range(4))
    assert summary["config"]["epochs"] == 2
    assert set(summary["strategies"]) == set(names)
    by_name = {row["strategy"]: row for row in summary["summary"]}
    assert by_name["retrain"]["relative_cost"] == 1.0
    assert by_name["naive"]["relative_cost"] < 1.0
    assert (by_name["rehearsal-grow"]["samples_processed"]
            > by_name["rehearsal-fixed"]["samples_processed"])
    # the Hessian form's raw negative share is recorded, one value per month
    hessian = summary["strategies"]["ewc-hessian"]["negative_fraction_per_month"]
    assert len(hessian) == 4 and all(0 <= value <= 1 for value in hessian)


def test_quick_run_figure_is_a_readable_png(quick_run):
    path = quick_run / "forgetting.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = pytest.importorskip("matplotlib.image").imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300


def test_summary_table_is_printed_best_first(tmp_path, capsys):
    assert main(["--quick", "--strategies", "naive,retrain", "--months", "2",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("strategy"):].splitlines()
    means = [float(line.split()[1]) for line in table[2:4]]
    assert means == sorted(means, reverse=True)
    assert {line.split()[0] for line in table[2:4]} == {"naive", "retrain"}
    assert f"wrote results.csv, summary.json, forgetting.png to {tmp_path}" in out


def test_data_option_reads_a_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "stream.csv"
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["when", "a", "b", "c", "is_bad"])
        for month in ["2021-01", "2021-02", "2021-03", "2021-04"]:
            for row in range(40):
                label = row % 2
                writer.writerow([month, *(rng.normal(label, 1, 3).round(4)), label])
    out = tmp_path / "out"
    assert main(["--data", str(path), "--month-column", "when", "--label-column", "is_bad",
                 "--months", "3", "--strategies", "naive,retrain,rehearsal-fixed",
                 "--quick", "--metric", "roc_auc", "--out", str(out)]) == 0
    rows = _read_csv(out / "results.csv")
    assert {r["eval_month"] for r in rows} == {"2021-01", "2021-02", "2021-03"}
    assert {r["metric"] for r in rows} == {"roc_auc"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["n_features"] == 3
    assert summary["config"]["n_rows"] == 120


def test_list_strategies(capsys):
    assert main(["--list-strategies"]) == 0
    out = capsys.readouterr().out
    for name, (family, _, _) in _registry().items():
        assert name in out and family in FAMILIES


def test_without_matplotlib_the_figure_is_skipped(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["--quick", "--strategies", "naive", "--months", "2",
                 "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "matplotlib is not installed: skipped forgetting.png" in captured.err
    assert not (tmp_path / "forgetting.png").exists()
    assert (tmp_path / "results.csv").exists() and (tmp_path / "summary.json").exists()


def _bad_csv(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--strategies", "naive,ewc-fisher"], "unknown strategy 'ewc-fisher'"),
        (["--strategies", "naive,naive"], "repeats naive"),
        (["--months", "1"], "argument --months: '1' is too small"),
        (["--months", "three"], "argument --months: 'three' is not an integer"),
        (["--epochs", "0"], "argument --epochs: '0' is too small"),
        (["--metric", "f1"], "argument --metric: invalid choice: 'f1'"),
        (["--data", "missing.csv"], "--data 'missing.csv': no such file"),
        (["--device", "not-a-device"], "--device 'not-a-device' is not a torch device"),
    ],
)
def test_bad_options_exit_with_usage_error(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--out", str(tmp_path)])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "argv", "message"),
    [
        ("month,x,label\n1,0.5,0\n", ["--label-column", "y"],
         "--label-column 'y' is not a column of"),
        ("m,x,label\n1,0.5,0\n", [], "--month-column 'month' is not a column of"),
        ("month,x,label\n" + "1,0.5,0\n1,0.1,1\n2,0.3,0\n2,0.2,1\n", ["--months", "5"],
         "--months 5 exceeds the 2 months in"),
        ("month,x,label\n1,abc,0\n", [], "feature columns must be numeric; x are not"),
        ("month,x,label\n1,,0\n1,0.5,1\n", [], "missing values in x"),
        ("month,label\n1,0\n", [], "has no feature columns"),
    ],
)
def test_bad_data_files_exit_with_usage_error(text, argv, message, capsys, tmp_path):
    path = _bad_csv(tmp_path, text)
    with pytest.raises(SystemExit) as info:
        main(["--data", path, *argv, "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_file_type(capsys, tmp_path):
    path = _bad_csv(tmp_path, "month,x,label\n", name="stream.xlsx")
    with pytest.raises(SystemExit):
        main(["--data", path])
    assert "unknown file type '.xlsx'" in capsys.readouterr().err


def test_cuda_requested_without_cuda(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(SystemExit) as info:
        main(["--device", "cuda", "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "CUDA is not available on this machine; use --device cpu" in capsys.readouterr().err


def test_module_entry_point(monkeypatch, capsys):
    # ``python -m skcl.benchmark`` executes the module as __main__: do the same
    # (runpy cannot reload a module that pytest's doctest collection has loaded)
    spec = importlib.util.spec_from_file_location("__main__", benchmark.__file__)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "skcl"
    monkeypatch.setattr(sys, "argv", ["skcl-benchmark", "--help"])
    with pytest.raises(SystemExit) as info:
        spec.loader.exec_module(module)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: skcl-benchmark") and "--list-strategies" in out
