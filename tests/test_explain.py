"""One "why" for a run (``run.explain``): the Run page and ``run``/``show`` say the same sentences, the page in
markdown (its topic in bold, data escaped), the CLI in its column; and one reason for missing GPU telemetry."""

from __future__ import annotations

from test_why import facts

from edgeprof.cli.text import run_summary
from edgeprof.cli.text import why_lines as cli_lines
from edgeprof.run import explain
from edgeprof.run.summary import build_summary
from edgeprof.ui import md_text
from edgeprof.ui import why_lines as page_lines

UNAVAILABLE = dict(op_profile={"unavailable": "ai-edge-litert 2.3.0 has no per-operator profiler"},
                   memory_pressure={"unavailable": "the kernel gives no pressure-stall information"})


def test_the_page_and_the_cli_say_the_same_sentences():
    for doc in (build_summary(facts()), build_summary(facts(**UNAVAILABLE))):
        whys = explain.why(doc)
        assert [w.topic for w in whys] == ["Memory pressure", "Energy", "Operator profile"]
        assert page_lines(doc) == [f"**{w.topic}**: {md_text(w.text)}" for w in whys]
        assert cli_lines(doc) == [f"  {w.short:<13}{w.text}" for w in whys]
        printed = run_summary(doc)
        assert all(line in printed.splitlines() for line in cli_lines(doc))


def test_each_topic_in_words_with_its_unit_and_scope():
    pressure, energy, ops = (w.text for w in explain.why(build_summary(facts())))
    assert pressure.startswith("some task stalled on memory 60.0% of the steady phase, all tasks 20.0% (in the "
                               "worker's cgroup); major faults ")
    assert " mJ per inference at 4.00 W mean power over the steady phase (Intel RAPL" in energy
    assert ops.startswith("ConvInteger ") and ops.endswith("of the steady p50 (4 inferences profiled after the steady "
                                                           "phase).")
    pressure, _, ops = (w.text for w in explain.why(build_summary(facts(**UNAVAILABLE))))
    assert pressure.startswith("unavailable: the kernel gives no pressure-stall information; major faults ")
    assert ops == "unavailable: ai-edge-litert 2.3.0 has no per-operator profiler."


def test_a_result_without_the_figures_has_no_why_and_data_is_escaped_on_the_page():
    assert explain.why({"status": "crashed"}) == []
    doc = {"energy": {"unavailable": "no sensor at [x](http://host/)"}}
    assert page_lines(doc) == ["**Energy**: unavailable: no sensor at \\[x\\](http://host/)."]


def test_the_gpu_reason_names_the_source_that_was_tried():
    sources = [{"name": "host", "available": True, "reason": ""},
               {"name": "nvml", "available": False, "reason": "NVML Shared Library Not Found"}]
    assert explain.gpu_reason(sources) == "nvml: NVML Shared Library Not Found"
    assert explain.gpu_reason([{"name": "jetson", "available": False}]) == "jetson: unavailable"
    assert explain.gpu_reason(None) == "no GPU source on this device"
    assert "no GPU telemetry (nvml: NVML Shared Library Not Found)" in run_summary(
        {**build_summary(facts()), "telemetry_sources": sources})
