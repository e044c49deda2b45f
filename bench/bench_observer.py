"""Observer benchmark: does watching a run in a browser on the device change what it measures, before and after the
worker got CPU priority and the Run page its lighter refresh?

    .venv/bin/python bench/bench_observer.py [--pairs 3] [--seconds 20] [--before a82b318]

One configuration (efficientnet-lite0 int8-static, ONNX Runtime, 256 MB memory limit, 2 threads), run

- headless: ``python -m edgeprof run ...`` as a separate process, no browser open;
- watched: started from the Run page of ``streamlit run app.py`` (the helper of tests/test_browser.py) in one headless
  Chromium (Debian's /usr/bin/chromium, via Playwright) on the same machine, which keeps the page open and refreshing
  until the run has finished;

each with two trees of the code, side by side in one run:

- before: the code at ``--before`` (default a82b318, the commit this work started from: no CPU priority, the
  telemetry charts redrawn with every latency refresh), unpacked with ``git archive`` into a scratch folder, with its
  own server, data folder and database (its schema is older);
- after: this checkout (the worker's CPU priority from worker/priority.py, telemetry in a fragment of its own).

Runs are interleaved (before headless, before watched, after headless, after watched; every other round in the
opposite order), so slow drifts of the machine (other users' work, temperature) spread over all four kinds. Per
round it prints each run's p50, its jitter (p99 - p50, ms), the worker's and everything else's mean CPU (100% = one
core), the CPU-priority mechanism and how often the watched page redrew its live view (what the browser and the
dashboard still get); at the end, for before and after side by side, the medians over the rounds and the ratios
p50(watched)/p50(headless) and jitter(watched)/jitter(headless).

Target: p50 ratio <= 1.10 on a 2-core machine. The load average says how quiet the machine was: numbers from a
machine other people were using at the same time are noisy, and say so. ``EDGEPROF_CPU_PRIORITY`` (off, nice, or a
weight factor) applies to the "after" runs, to compare settings; the "before" code does not read it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

MODEL, PRECISION, RUNTIME, MEMORY_MB, THREADS = "efficientnet-lite0", "int8-static", "onnx", 256, 2
BEFORE = "a82b318"  # main just before the CPU priority (issue 14, sections 3 and 4)
TARGET = 1.10
KINDS = ("before", "after")
# every redraw of the live view gives its hidden .ep-live element a new data-render-wall (views/1_Run.py)
REDRAWS_JS = """() => {
  window.__epRedraws = []; let last = null;
  new MutationObserver(() => {
    const e = document.querySelector('.ep-live');
    if (e && e.dataset.renderWall !== last && e.dataset.status === 'running') {
      last = e.dataset.renderWall; window.__epRedraws.push(Date.now() / 1000);
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
}"""


class Tree:
    """One tree of the code with its own data folder and database."""

    def __init__(self, name: str, root: Path, home: Path):
        self.name, self.root, self.home, self.db = name, root, home, home / "runs.duckdb"
        home.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict:
        return {**os.environ, "EDGEPROF_HOME": str(self.home), "EDGEPROF_DB": str(self.db),
                "PYTHONPATH": str(self.root)}

    def cli(self, *args: str, timeout: float) -> str:
        out = subprocess.run([sys.executable, "-m", "edgeprof", *args], cwd=self.root, env=self.env(),
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{self.name}: `edgeprof {' '.join(args)}` failed (exit {out.returncode}):\n"
                               f"{out.stderr[-2000:]}{out.stdout[-2000:]}")
        return out.stdout

    def prepare(self) -> None:
        """Quantize the variant once, outside every measured run (each tree has its own data folder)."""
        code = f"from edgeprof.models.catalog import resolve_variant; resolve_variant({MODEL!r}, {PRECISION!r}, {RUNTIME!r})"
        subprocess.run([sys.executable, "-c", code], cwd=self.root, env=self.env(), check=True, timeout=600)

    def summary(self, run_id: str) -> dict:
        """A stored run's summary, read by this tree's own code (the other one would migrate its database)."""
        doc = json.loads(self.cli("show", run_id, "--json", timeout=120))
        if not doc.get("summary"):
            raise RuntimeError(f"{self.name}: run {run_id} has no stored summary")
        return doc["summary"]


def unpack(ref: str, dest: Path) -> Path:
    """The tree at ``ref`` (``git archive``) in ``dest``."""
    dest.mkdir()
    archive = dest.parent / "before.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), ref], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest)  # noqa: S202 - our own repository's archive
    archive.unlink()
    return dest


def headless_run(tree: Tree, seconds: float) -> dict:
    """One CLI run in its own process; returns its result document."""
    out = tree.cli("run", "--model", MODEL, "--precision", PRECISION, "--runtime", RUNTIME, "--memory-limit",
                   str(MEMORY_MB), "--threads", str(THREADS), "--duration", f"{seconds:g}", "--json", "--quiet",
                   timeout=seconds * 6 + 120)
    return json.loads(out)


def watched_run(browser, url: str, tree: Tree, seconds: float) -> dict:
    """One run started from the Run page and watched until it has finished; returns its stored summary."""
    from test_browser import select_option, wait_for_app

    page = browser.new_page(viewport={"width": 1400, "height": 2300})
    page.set_default_timeout(60_000)
    try:
        page.goto(url)
        page.get_by_role("button", name="Start run").wait_for()
        select_option(page, "Model", MODEL)
        wait_for_app(page)
        select_option(page, "Precision", PRECISION)
        wait_for_app(page)
        select_option(page, "Runtime", "ONNX Runtime")
        wait_for_app(page)
        select_option(page, "Memory limit (MB)", f"{MEMORY_MB} MB")
        wait_for_app(page)
        threads = page.get_by_label("Threads")
        threads.fill(str(THREADS))
        threads.press("Enter")
        page.get_by_text("Advanced", exact=True).click()
        field = page.get_by_label("Duration override (s of steady state; 0 = use the preset)")
        field.fill(f"{seconds:g}")
        field.press("Enter")
        time.sleep(0.5)
        wait_for_app(page)
        page.evaluate(REDRAWS_JS)
        live = "() => { const e = document.querySelector('.ep-live'); return e ? e.dataset.run : null; }"
        before = page.evaluate(live)  # a page may still show the server's previous run
        page.get_by_role("button", name="Start run").click()
        page.wait_for_function(f"prev => ({live})() && ({live})() !== prev", arg=before, timeout=120_000)
        rid = page.evaluate(live)
        # this run's own summary (a fresh page of the newer code also shows the newest stored run's)
        page.wait_for_function("rid => document.body.innerText.includes(rid + ' finished normally')", arg=rid,
                               timeout=(seconds * 6 + 120) * 1000)
        redraws = page.evaluate("() => window.__epRedraws")
    finally:
        page.close()
    span = redraws[-1] - redraws[0] if len(redraws) > 1 else 0.0
    return {**tree.summary(rid), "_redraws_per_s": (len(redraws) - 1) / span if span > 0 else 0.0}


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def p50(res: dict) -> float:
    return res["latency_ms"]["p50"]


def jitter(res: dict) -> float:
    """p99 - p50 in ms: how far the slow tail sits above the typical inference."""
    lat = res["latency_ms"]
    return lat["p99"] - lat["p50"]


def describe(res: dict) -> str:
    lat, cpu = res.get("latency_ms") or {}, res.get("cpu") or {}
    prio = res.get("cpu_priority") or {}
    how = prio.get("mechanism") or (f"unavailable: {prio['unavailable']}" if prio.get("unavailable") else "none")
    others = cpu.get("others_mean_pct")
    redraws = f", live view {res['_redraws_per_s']:.2f} redraws/s" if "_redraws_per_s" in res else ""
    return (f"p50 {lat.get('p50'):.3f} ms, jitter {jitter(res):.3f} ms, worker {cpu.get('worker_mean_pct') or 0:.0f}%, "
            f"others {'-' if others is None else f'{others:.0f}%'}, n {lat.get('n')}{redraws}, priority: {how}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=3, help="rounds; each runs all four kinds once")
    ap.add_argument("--seconds", type=float, default=20.0, help="steady-state seconds of each run")
    ap.add_argument("--before", default=BEFORE, help=f"git revision of the 'before' code (default {BEFORE})")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server

    print(f"bench_observer: {MODEL} {PRECISION} {RUNTIME}, {MEMORY_MB} MB limit, {THREADS} threads, "
          f"{args.seconds:g} s steady per run, {args.pairs} rounds on {os.cpu_count()} cores; before = {args.before}, "
          f"after = this checkout")
    print(f"load average before: {loadavg()}", flush=True)
    results: dict[tuple[str, str], list[dict]] = {(k, w): [] for k in KINDS for w in ("headless", "watched")}
    with tempfile.TemporaryDirectory(prefix="edgeprof-bench-observer-") as tmp:
        tmp = Path(tmp)
        trees = {"before": Tree("before", unpack(args.before, tmp / "code-before"), tmp / "home-before"),
                 "after": Tree("after", ROOT, tmp / "home-after")}
        for tree in trees.values():
            tree.prepare()
        with contextlib.ExitStack() as stack:
            urls = {k: stack.enter_context(streamlit_server(t.home, t.db, t.root)) for k, t in trees.items()}
            p = stack.enter_context(sync_playwright())
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            stack.callback(browser.close)
            for i in range(args.pairs):
                for kind in (KINDS if i % 2 == 0 else KINDS[::-1]):
                    tree = trees[kind]
                    h = headless_run(tree, args.seconds)
                    print(f"round {i + 1} {kind:<6} headless: {describe(h)}  (load {loadavg()})", flush=True)
                    w = watched_run(browser, urls[kind], tree, args.seconds)
                    print(f"round {i + 1} {kind:<6} watched:  {describe(w)}  (load {loadavg()})", flush=True)
                    results[(kind, "headless")].append(h)
                    results[(kind, "watched")].append(w)
    print(f"load average after: {loadavg()}")
    print(f"{'':<7}{'p50 headless':>13}{'p50 watched':>13}{'p50 ratio':>11}{'jitter headless':>17}"
          f"{'jitter watched':>16}{'jitter ratio':>14}{'redraws/s':>11}")
    ratios = {}
    for kind in KINDS:
        hs, ws = results[(kind, "headless")], results[(kind, "watched")]
        hp, wp = statistics.median(map(p50, hs)), statistics.median(map(p50, ws))
        hj, wj = statistics.median(map(jitter, hs)), statistics.median(map(jitter, ws))
        ratios[kind] = wp / hp
        redraws = statistics.median(w["_redraws_per_s"] for w in ws)
        print(f"{kind:<7}{hp:>10.3f} ms{wp:>10.3f} ms{wp / hp:>11.3f}{hj:>14.3f} ms{wj:>13.3f} ms"
              f"{(wj / hj if hj else float('nan')):>14.3f}{redraws:>11.2f}")
        print(f"{'':<7}per round p50 ratio: "
              f"{', '.join(f'{p50(w) / p50(h):.3f}' for h, w in zip(hs, ws, strict=True))}")
    after = ratios["after"]
    print(f"p50(watched)/p50(headless): before {ratios['before']:.3f}, after {after:.3f} (target <= {TARGET:.2f}: "
          f"{'PASS' if after <= TARGET else 'FAIL'})")
    return 0 if after <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
