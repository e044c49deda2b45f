"""Every command line shown in README.md and docs/*.md runs in a test, exactly as written.

The commands come from the documents' shell code blocks (```sh), read when the tests run, so a new or changed
command is tested without anyone listing it here; a command that no rule below knows how to run fails the test.
They run in document order against one scratch data directory (EDGEPROF_HOME), in a scratch folder where `.venv`
points at this interpreter's environment, with the environment's `bin` first on PATH (so `python` and `edgeprof`
are the project's, as in an activated venv). What may differ from the text, and only this:

* placeholders that the prose explains (STUDY_ID) take the id an earlier command made; RUN_A and RUN_B, the two
  newest runs with an operator profile (older first), which the commands before them made;
* a long command is shortened through its own flags (`run --duration 2`, `compare --duration 1`,
  `study --duration 0.3 --cooldown 0`, `memory --max-probes 4 --ladder-seconds 1`),
  appended, so argparse's last value wins and every other flag stays as written;
* the app scripts get `--server.port` (a free port) and are stopped once the server answers;
* a chain of `python3 -m venv`, `pip install`, `cd` and edgeprof commands (the package install) runs whole, from the
  checkout, as written;
* `bash scripts/test.sh` is the command CI runs (`.ci/run` executes it), which is running this very test;
* a command with an `s3://BUCKET/...` URL runs against an S3 emulator this test starts on 127.0.0.1 (moto's server
  mode), given through the standard AWS variables, with that bucket made first.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import ROOT, s3_emulator

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = ("sh", "bash", "shell", "console")
EDGEPROF = re.compile(r"^(?:\.venv/bin/)?(?:python3? -m edgeprof|edgeprof)\s+(?P<args>.*)$")
APP = re.compile(r"^(?P<env>(?:[A-Z_]+=\S+\s+)*)bash scripts/app\.sh(?P<args>(?:\s.*)?)$")
SHORTEN = {"run": ["--duration", "2"], "compare": ["--duration", "1"], "study": ["--duration", "0.3", "--cooldown", "0"],
           "memory": ["--max-probes", "4", "--ladder-seconds", "1"]}
CHAIN_PART = re.compile(r"^(?:python3? -m venv \S+|\S+/bin/pip install(?: -q)? \.|cd \S+|\S*edgeprof(?: .*)?)$")
LOOKS_LIKE_A_COMMAND = re.compile(r"^(?:sudo |cd |bash |sh |pip3? |python3? |\.venv/|\./|/\S+/bin/|edgeprof |[A-Z_]+=\S+ )")

pytestmark = pytest.mark.slow


def blocks(text: str) -> list[tuple[str, int, str]]:
    """(language, first line number, text) of each fenced code block of a Markdown text."""
    out, lang, start, buf = [], None, 0, []
    for no, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if lang is None:
                lang, start, buf = line[3:].strip().lower(), no + 1, []
            else:
                out.append((lang, start, "\n".join(buf)))
                lang = None
        elif lang is not None:
            buf.append(line)
    return out


def command_lines(path: Path) -> list[tuple[int, str]]:
    """Shell lines of ```sh blocks: continuations joined, trailing comments dropped."""
    out = []
    for lang, start, text in blocks(path.read_text()):
        if lang not in SHELL:
            continue
        joined = re.sub(r"\\\n\s*", " ", text)
        for offset, line in enumerate(joined.splitlines()):
            cmd = re.split(r"\s+#\s", " " + line, maxsplit=1)[0].strip()
            if cmd and not cmd.startswith("#"):
                out.append((start + offset, cmd))
    return out


def all_commands() -> list[tuple[str, str]]:
    seen, out = set(), []
    for doc in DOCS:
        for no, cmd in command_lines(doc):
            m = EDGEPROF.match(cmd)
            key = m["args"] if m else cmd
            if key not in seen:  # the same command in two documents (python or .venv/bin/python): run it once
                seen.add(key)
                out.append((f"{doc.relative_to(ROOT)}:{no}", cmd))
    return out


def test_unlabelled_blocks_hold_no_commands():
    """A command in a block without ```sh would escape the test below: every block that holds one is labelled."""
    for doc in DOCS:
        for lang, start, text in blocks(doc.read_text()):
            if lang in SHELL:
                continue
            for offset, line in enumerate(text.splitlines()):
                line = line.strip()
                assert not LOOKS_LIKE_A_COMMAND.match(line), \
                    f"{doc.name}:{start + offset}: a command in a ```{lang or '(unlabelled)'} block; label it ```sh"


def test_ci_runs_the_readme_test_command():
    readme = [cmd for _, cmd in command_lines(ROOT / "README.md")]
    assert "bash scripts/test.sh" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^(exec )?bash scripts/test\.sh", ci, re.M), "CI must run the README's test command as written"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    work = tmp_path_factory.mktemp("docs-cwd")
    home = tmp_path_factory.mktemp("docs-home")
    venv = Path(sys.prefix)
    (work / ".venv").symlink_to(venv)
    env = dict(os.environ, EDGEPROF_HOME=str(home), PYTHONPATH=str(ROOT),
               PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", MALLOC_ARENA_MAX="2")
    env.pop("EDGEPROF_DB", None)
    toml = _study_file()
    (work / "my-study.toml").write_text(toml)
    return {"cwd": work, "env": env, "home": home}


def _study_file() -> str:
    """The TOML block of docs/studies.md that the text says to save as my-study.toml."""
    text = (ROOT / "docs" / "studies.md").read_text()
    at = text.index("save it as `my-study.toml`")
    return next(t for lang, _, t in blocks(text[at:]) if lang == "toml")


def _newest_study(env) -> str | None:
    from edgeprof.store import Store

    df = Store(Path(env["EDGEPROF_HOME"]) / "runs.duckdb").list_studies()
    return None if df.empty else str(df.iloc[0]["study_id"])


def _newest_profiled_runs(env, n: int = 2) -> list[str]:
    from edgeprof.store import Store

    df = Store(Path(env["EDGEPROF_HOME"]) / "runs.duckdb").list_runs()
    df = df[df["op_profile"].notna()]
    return list(df["run_id"].head(n))[::-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_app(cmd: str, env: dict) -> None:
    port = _free_port()
    proc = subprocess.Popen(["bash", "-c", f"{cmd} --server.port {port} --server.headless true"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # the script first checks the environment (pip), then starts Streamlit
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"{cmd}: the app did not answer on port {port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200 and b"<title>" in r.read()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def s3_emulated():
    """An S3 emulator on 127.0.0.1 for the commands that name an s3:// URL: the AWS variables that reach it."""
    env: dict = {}
    server, _ = s3_emulator(env)
    yield env
    server.stop()


def _with_bucket(cmd: str, env: dict, s3_env: dict) -> dict:
    import s3fs

    bucket = re.search(r"s3://([a-z0-9.-]+)", cmd)[1]
    with pytest.MonkeyPatch.context() as mp:  # s3fs reads the AWS variables from os.environ
        for k, v in s3_env.items():
            mp.setenv(k, v)
        fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
        if not fs.exists(bucket):
            fs.mkdir(bucket)
    return {**env, **s3_env}


@pytest.mark.parametrize("where,cmd", all_commands(), ids=[w for w, _ in all_commands()])
def test_documented_command_runs_as_written(scratch, where, cmd, request):
    env = scratch["env"]
    if "s3://" in cmd:
        env = _with_bucket(cmd, env, request.getfixturevalue("s3_emulated"))
    if cmd.startswith("bash scripts/test.sh"):
        return  # CI runs it: test_ci_runs_the_readme_test_command checks that it is what CI runs
    if APP.match(cmd):
        _run_app(cmd, env)
        return
    if "&&" in cmd and all(CHAIN_PART.match(part.strip()) for part in cmd.split("&&")):
        r = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, f"{where}: `{cmd}` exited {r.returncode}:\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr
        return
    m = EDGEPROF.match(cmd)
    assert m, f"{where}: no test knows how to run `{cmd}`; teach tests/test_docs_commands.py, or drop it from the docs"
    if "STUDY_ID" in cmd:
        study = _newest_study(env)
        assert study, f"{where}: `{cmd}` needs a study made by an earlier command"
        cmd = cmd.replace("STUDY_ID", study)
    if "RUN_A" in cmd:
        runs = _newest_profiled_runs(env)
        assert len(runs) == 2, f"{where}: `{cmd}` needs two runs with an operator profile made by earlier commands"
        cmd = cmd.replace("RUN_A", runs[0]).replace("RUN_B", runs[1])
    words = shlex.split(m["args"])
    line = cmd + "".join(f" {shlex.quote(w)}" for w in SHORTEN.get(words[0], []))
    r = subprocess.run(["bash", "-c", line], cwd=scratch["cwd"], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{where}: `{line}` exited {r.returncode}:\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr and "error:" not in r.stderr, f"{where}: `{line}`:\n{r.stderr[-3000:]}"
    if "--json" in words:
        json.loads(r.stdout)
    if words[0] == "report":
        out = scratch["cwd"] / words[words.index("--out") + 1]
        assert (out / "index.html").is_file()
    if words[0] == "export":
        assert (scratch["cwd"] / words[words.index("--out") + 1]).is_file()
