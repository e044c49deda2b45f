"""What a fresh user read in the CLI's output and found wrong, pinned as they read it: fast latencies printed as
``0.019 ms`` with both ends of an interval alike, ``show`` of an OOM-killed run with nothing but its header,
``OOM-killed False``, an energy line four parentheses deep, ``1 threads``, ``22.5 kB`` beside ``0.08 MB -> 0.02 MB``,
and ``export --out EXISTING`` exiting 1 where usage errors exit 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, requires_cgroup

from edgeprof import stats
from edgeprof.cli.text import group_text, interval_text, run_summary, runs_table
from edgeprof.models.inspect import size_text
from edgeprof.models.quantize import describe_report
from edgeprof.run import explain
from edgeprof.store import Store


def edgeprof(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGEPROF_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


# 1. one formatter for latencies, the app's rule: µs below 1 ms, ends of an interval told apart

def test_latencies_read_in_microseconds_below_a_millisecond_with_three_figures():
    assert [stats.fmt_ms(v) for v in (0.0334, 0.0192, 0.019, 4.567, 4.5, 135.2, 12_345.0)] == [
        "33.4 µs", "19.2 µs", "19.0 µs", "4.57 ms", "4.50 ms", "135 ms", "12.3 s"]
    assert stats.fmt_ms(None) == stats.fmt_ms(float("nan")) == "-"


def test_an_interval_prints_its_ends_apart_when_they_differ_and_in_one_unit():
    assert stats.fmt_ms_range(0.0182, 0.0184) == "18.2 to 18.4 µs"
    assert stats.fmt_ms_range(0.01823, 0.01825) == "18.23 to 18.25 µs"  # three figures would print 18.2 twice
    assert stats.fmt_ms_range(0.018, 0.018) == "18.0 to 18.0 µs"  # equal ends stay equal
    assert stats.fmt_ms_range(0.95, 1.05) == "0.95 to 1.05 ms"
    assert stats.fmt_ms_range(135.2, 135.4) == "135.2 to 135.4 ms"


def test_the_pages_and_the_cli_share_the_formatter():
    from edgeprof.ui import words

    assert words.fmt_ms is stats.fmt_ms


def test_a_fast_runs_interval_and_a_groups_within_run_intervals_are_told_apart():
    lat = {"p50_ci": [0.01821, 0.01824], "p90_ci": [0.0191, 0.0222], "ci_scope": "within-run"}
    assert interval_text(lat).startswith("p50 95% interval 18.21 to 18.24 µs, p90 19.1 to 22.2 µs (within this run")
    runs = [{"run_id": f"r{i}", "status": "ok", "latency_ms": {"p50": 0.0183 + i / 1e4, "p50_ci": [0.0182 + i / 1e4,
                                                                                            0.0184 + i / 1e4]}}
            for i in range(3)]
    text = group_text({"group_id": "g", "status": "ok", "runs_ok": 3, "repeat": 3, "runs": runs,
                       "latency_ms": {"p50": 0.0193, "p90": 0.0201, "n_runs": 3}})
    assert "p50 18.3 µs  within-run interval 18.2 to 18.4 µs" in text
    assert "p50 18.4 µs  within-run interval 18.3 to 18.5 µs" in text
    assert "  latency      p50 19.3 µs (median of 3 run medians)  p90 20.1 µs" in text


def test_the_runs_tables_latency_columns_carry_their_unit_and_the_same_figures():
    rows = [{"run_id": "a", "status": "ok", "p50_ms": 0.03264, "p90_ms": 0.04},
            {"run_id": "b", "status": "ok", "p50_ms": 0.0192, "p90_ms": 2.5}]
    header, _, a, b = runs_table(rows).splitlines()
    assert header.split() == ["run_id", "status", "p50", "p90"]
    assert a.split() == ["a", "ok", "32.6", "µs", "40.0", "µs"] and b.split() == ["b", "ok", "19.2", "µs", "2.50", "ms"]


# 2, 3. a run killed before any steady sample still shows what was measured; the kill as yes or no

OOM = {"run_id": "r", "status": "oom_killed", "error": "the worker was OOM-killed: it needed more than the 20 MB memory "
       "limit (cgroup1). Raise the limit to run this model.", "model": "digits-cnn", "precision": "fp32",
       "runtime": "onnx", "load_ms": None, "latency_ms": {"n": 0},
       "memory": {"requested_mb": 20.0, "mechanism": "cgroup1", "peak_charged_mb": 20.0, "peak_rss_mb": 42.3,
                  "oom_killed": True, "major_faults": 0, "major_faults_per_s": 0.0,
                  "pressure": {"some_pct": 25.5, "full_pct": 25.4, "scope": "cgroup"}},
       "cpu": {"system_mean_pct": 81.7, "system_peak_pct": 100.0, "worker_mean_pct": 135.2},
       "energy": {"unavailable": "the run has no steady phase to divide energy over"}, "backend": {"threads": 2}}


def test_show_of_a_run_killed_before_its_steady_phase_prints_its_memory_and_pressure():
    text = run_summary(OOM, details=True)
    assert "  memory       limit 20 MB via cgroup1   peak charged 20.0 MB   peak worker RSS 42.3 MB   OOM-killed yes" in text
    assert "  pressure     some task stalled on memory 25.5%" in text
    assert "  CPU          device busy mean 81.7%" in text
    assert "None" not in text and "True" not in text and "  latency " not in text


def test_a_run_that_was_not_killed_says_no():
    ok = {**OOM, "status": "ok", "load_ms": 40.0, "latency_ms": {"n": 100, "p50": 0.02},
          "memory": {**OOM["memory"], "oom_killed": False}}
    assert "OOM-killed no " in run_summary(ok) and "False" not in run_summary(ok)


@requires_cgroup
def test_the_cli_shows_an_oom_killed_runs_memory(tmp_path):
    db = str(tmp_path / "runs.duckdb")
    run = edgeprof(tmp_path, "run", "--model", "digits-cnn", "--memory-limit", "20", "--duration", "2", "--quiet",
                   "--db", db)
    if run.returncode != 3 or ": oom_killed" not in run.stdout.splitlines()[0]:
        pytest.skip(f"digits-cnn was not OOM-killed under 20 MB here: {run.stdout.splitlines()[:1]}")
    assert "OOM-killed yes" in run.stdout
    rid = run.stdout.split()[1].rstrip(":")
    shown = edgeprof(tmp_path, "show", rid, "--db", db)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^  memory       limit 20 MB via \S+   peak charged [\d.]+ MB   peak worker RSS [\d.]+ MB   "
                     r"OOM-killed yes", shown.stdout, re.M), shown.stdout
    assert "\n  pressure     " in shown.stdout


# 4. reasons inside reasons: one level of parentheses

def test_the_energy_line_is_one_sentence_with_one_level_of_parentheses():
    sources = [{"name": "nvml", "available": False, "reason": "no GPU found (NVML: NVML Shared Library Not Found)"},
               {"name": "rapl", "available": False, "reason": "no Intel RAPL zones in /sys/class/powercap (not an "
                                                               "x86 CPU with powercap, or a virtual machine)"}]
    why = "no power sensor on this device (" + "; ".join(f"{s['name']}: {s['reason']}" for s in sources) + ")"
    text = run_summary({**OOM, "energy": {"unavailable": why}, "status": "ok", "load_ms": 1.0,
                        "latency_ms": {"n": 100}, "telemetry_sources": sources})
    energy = next(ln for ln in text.splitlines() if ln.startswith("  energy"))
    assert energy == ("  energy       unavailable: no power sensor on this device (nvml: no GPU found, NVML: NVML Shared "
                      "Library Not Found; rapl: no Intel RAPL zones in /sys/class/powercap, not an x86 CPU with "
                      "powercap, or a virtual machine).")
    gpu = next(ln for ln in text.splitlines() if ln.startswith("  GPU"))
    assert gpu == "  GPU          no GPU telemetry (nvml: no GPU found, NVML: NVML Shared Library Not Found)"
    assert explain.one_level("a (b (c) d (e (f)))") == "a (b, c d, e, f)"


# 5. one thread, one run

def test_a_count_of_one_reads_singular():
    assert [stats.plural(n, "thread") for n in (0, 1, 2)] == ["0 threads", "1 thread", "2 threads"]
    one = {**OOM, "status": "ok", "load_ms": 1.0, "latency_ms": {"n": 100},
           "backend": {"name": "onnxruntime", "version": "1.2", "execution_provider": "cpu", "threads": 1}}
    assert "[onnxruntime 1.2, cpu, 1 thread]" in run_summary(one)


# 6. sizes in one unit

def test_quantize_prints_every_size_by_one_rule():
    assert size_text(22_500) == "22.5 kB" and size_text(103_876) == "103.9 kB" and size_text(18_554_805) == "18.55 MB"
    report = {"quantized_ops": 5, "of_ops": 12, "op_types": {"ConvInteger": 3}, "bytes": {"before": 80_000,
                                                                                           "after": 22_500}}
    assert describe_report(report).endswith("; 80.0 kB -> 22.5 kB")
    report["bytes"] = {"before": 1_200_000, "after": 350_000}  # one unit on both sides of the arrow
    assert describe_report(report).endswith("; 1.20 MB -> 0.35 MB")


def test_the_quantize_command_writes_the_file_and_the_report_in_the_same_unit(tmp_path):
    proc = edgeprof(tmp_path, "quantize", "digits-cnn", "--precision", "fp16")  # int8-dynamic: not on ORT 1.23.2
    assert proc.returncode == 0, proc.stderr
    size_line, report = proc.stdout.splitlines()[1:3]
    unit = size_line.split(",")[0].split()[1]
    assert re.search(rf"; [\d.]+ {unit} -> [\d.]+ {unit}$", report), proc.stdout


# 7. export: a path that exists is a usage error (exit 2); a written bundle says how many runs it holds

def test_export_refuses_an_existing_path_with_exit_2_and_counts_what_it_wrote(tmp_path):
    db = tmp_path / "runs.duckdb"
    store = Store(db)

    ids = [store.insert_run(None, None, {"model": "digits-cnn", "precision": "fp32", "threads": 2}) for _ in range(2)]
    del store
    out = tmp_path / "bundle"
    first = edgeprof(tmp_path, "export", "--db", str(db), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"exported 2 runs to {out}"
    again = edgeprof(tmp_path, "export", "--db", str(db), "--out", str(out))
    assert again.returncode == 2
    assert again.stderr.strip() == (f"error: {out} already exists, and an export never overwrites anything. Choose a "
                                    "new path for the export.")
    one = edgeprof(tmp_path, "export", ids[0], "--db", str(db), "--out", str(tmp_path / "one.zip"))
    assert one.returncode == 0 and one.stdout.strip() == f"exported 1 run to {tmp_path / 'one.zip'}", one.stderr
    assert json.loads((out / "manifest.json").read_text())["run_ids"] == sorted(ids)
