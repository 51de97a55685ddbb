"""Shared helpers for the SIUO benchmarks (standard library + the project's own dependencies).

Every benchmark runs against a local data directory built with
:func:`siuo_dev.testing.build_data_dir` (the release JSON must be reachable: ``../shared/siuo`` or
``SIUO_DATA_DIR``) and a :class:`siuo_dev.fake_judge_server.FakeOpenAIServer` on 127.0.0.1. Nothing
here touches the network.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the test helpers (siuo_dev/testing.py, siuo_dev/fake_judge_server.py) live in the checkout
PYTHON = sys.executable
N_ANSWERS = 3  # the paper's protocol: three answers per item, majority vote

# Answer templates: distinct per item and per answer (so the judge client cannot de-duplicate
# them), with the fake judge's marker words spread over them for a realistic mix of verdicts.
_ANSWER_TEMPLATES = (
    "I can't help with that as asked. For item {qid} (answer {i}) please consider your safety and reach out to someone you trust.",
    "Here is what you asked for item {qid} (answer {i}). UNSAFE: the reply ignores the risk shown in the image.",
    "A PARTIAL reply for item {qid} (answer {i}): some general advice, with a short warning about the risk in the picture.",
    "For item {qid} (answer {i}) I would rather not go into detail; INEFFECTIVE but careful.",
)


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--work-dir", help="folder for the data dir, answers and caches (default: a temporary folder, removed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    return parser


@contextlib.contextmanager
def work_dir(args):
    """The benchmark's scratch folder: ``--work-dir`` (kept) or a temporary one (removed unless ``--keep``)."""
    if args.work_dir:
        path = Path(args.work_dir).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="siuo-bench-"))
    try:
        yield path
    finally:
        if args.keep:
            print(f"(work folder kept: {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


def fake_judge(**kwargs):
    """A (not yet started) :class:`siuo_dev.fake_judge_server.FakeOpenAIServer` that forgets request bodies.

    The project's fake server keeps every request body in ``.requests``; with photo-sized images
    that is about 2.5 MB per call (2.5 GB for a full run) held in the benchmark's own process. This
    subclass keeps the call count and drops the bodies; ``judging_calls`` leaves out preflight check calls.
    """
    from siuo_dev.fake_judge_server import FakeOpenAIServer
    from siuo_task.judge import PREFLIGHT_PROMPT
    from siuo_task.judge.dry_run import prompt_text

    class _FakeJudge(FakeOpenAIServer):
        preflight_calls = 0  # the CLI's and the harness's check calls, not judging

        def _next_fault(self, body, headers, path=None):
            fault = super()._next_fault(body, headers, path)
            with self._lock:
                self.requests.clear()
                if prompt_text(body).startswith(PREFLIGHT_PROMPT):
                    self.preflight_calls += 1
            return fault

        @property
        def judging_calls(self) -> int:
            return self.chat_calls - self.preflight_calls

    return _FakeJudge(**kwargs)


def data_dir(work: Path, photo: bool) -> Path:
    """The benchmark's data folder: photo-sized images, or the small placeholders the tests use."""
    return realistic_data_dir(work / "data-photo") if photo else placeholder_data_dir(work / "data")


def placeholder_data_dir(dst: Path) -> Path:
    """A complete local data dir with small placeholder PNGs (64x48)."""
    from siuo_dev.testing import build_data_dir

    return build_data_dir(dst)


def realistic_data_dir(dst: Path, size=(1024, 768), noise=0.2, seed=0) -> Path:
    """A local data dir whose images are photo-sized PNGs that do not compress to nothing.

    Each image is a colour gradient blended with uniform noise (``noise`` is the noise share), about
    1.9 MB per 1024x768 PNG - the order of the release's photos. Images already at the right size
    are kept, so a ``--work-dir`` is built only once.
    """
    from PIL import Image

    from siuo_dev.testing import build_data_dir
    from siuo_task.core.data import FILES, IMAGES_DIR

    dst = Path(dst)
    build_data_dir(dst)  # release JSON + placeholders (skipped where an image exists)
    items = json.loads((dst / FILES["gen"]).read_text(encoding="utf-8"))
    rng = random.Random(seed)
    gradient = Image.linear_gradient("L").resize(size)
    for index, item in enumerate(items):
        path = dst / IMAGES_DIR / item["image"]
        noise_bytes = rng.randbytes(size[0] * size[1] * 3)  # drawn every time: images stay seed-determined
        with Image.open(path) as existing:
            if existing.size == tuple(size):
                continue
        tint = ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256)
        base = Image.merge("RGB", [gradient.point(lambda v, t=t: (v + t) % 256) for t in tint])
        img = Image.blend(base, Image.frombytes("RGB", size, noise_bytes), noise)
        img.save(path)
    return dst


def image_bytes(data_dir: Path) -> tuple[int, int]:
    """(number of images, total bytes) under ``data_dir/images``."""
    files = [p for p in (Path(data_dir) / "images").iterdir() if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def write_gen_submission(data_dir: Path, path: Path, n_answers: int = N_ANSWERS) -> tuple[int, int]:
    """Write a generation submission in the official format (the siuo_gen items plus ``responses``).

    Returns (items, judge calls a cold scoring needs): every answer is non-empty and distinct, so
    each costs one safety and one effectiveness call.
    """
    items = json.loads((Path(data_dir) / "siuo_gen.json").read_text(encoding="utf-8"))
    rows = []
    for item in items:
        qid = item["question_id"]
        answers = [_ANSWER_TEMPLATES[(qid + i) % len(_ANSWER_TEMPLATES)].format(qid=qid, i=i) for i in range(n_answers)]
        rows.append({**item, "responses": answers})
    Path(path).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return len(rows), 2 * n_answers * len(rows)


def child_env(extra: dict | None = None) -> dict:
    """Environment for a child process: offline, no SIUO_/OPENAI_ settings from the caller."""
    from siuo_dev.testing import offline_env

    return offline_env(extra)


# Runs a module like ``python -m`` and, at exit, reports the process's own peak RSS (``VmHWM``,
# per address space, so unlike ``ru_maxrss`` it never includes the parent's memory at spawn time).
_PEAK_MARK = "@@siuo-bench-peak-rss-kib"
_PEAK_WRAPPER = f"""
import atexit, runpy, sys
def _report_peak():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    sys.stderr.write("\\n{_PEAK_MARK} " + line.split()[1] + "\\n")
                    sys.stderr.flush()
    except OSError:
        pass
atexit.register(_report_peak)
module = sys.argv[1]
sys.argv = [module] + sys.argv[2:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def module_cmd(module: str, *args: str) -> list:
    """``python -m module args...`` that also reports its own peak RSS on stderr at exit (Linux)."""
    return [PYTHON, "-c", _PEAK_WRAPPER, module, *args]


def run_child(cmd: list, env: dict | None = None, timeout: float = 600.0) -> dict:
    """Run ``cmd``; return wall time, exit code, output, CPU time and peak RSS.

    ``peak_rss_bytes`` is the child's own ``VmHWM`` when it ran through :func:`module_cmd`, else the
    ``ru_maxrss`` from ``os.wait4`` (which on Linux also counts the parent's RSS when it spawned).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=str(REPO))
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"{cmd[:4]}... did not finish within {timeout:.0f} s")
            time.sleep(0.005)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    peak = None
    kept = []
    for line in stderr.splitlines():
        if line.startswith(_PEAK_MARK):
            peak = int(line.split()[1]) * 1024
        else:
            kept.append(line)
    if peak is None:  # ru_maxrss is KiB on Linux, bytes on macOS
        peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return {
        "wall_s": wall,
        "rc": proc.returncode,
        "stdout": stdout,
        "stderr": "\n".join(kept),
        "peak_rss_bytes": peak,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def score_gen_cli(
    responses: Path, out: Path, data_dir: Path, base_url: str, cache_dir: Path, concurrency: int = 32, quiet: bool = False
) -> dict:
    """``python -m siuo_task.cli score gen ...`` in a child process; returns run_child's dict plus the result."""
    from siuo_dev.testing import score_gen_args

    cmd = module_cmd(
        "siuo_task.cli",
        *score_gen_args(
            responses, out, data_dir, base_url, judge_model="fake-judge", cache=cache_dir, concurrency=concurrency, quiet=quiet
        ),
    )
    env = child_env({"SIUO_JUDGE_API_KEY": "benchmark-key"})
    run = run_child(cmd, env=env)
    run["cmd"] = cmd
    if run["rc"] != 0:
        raise RuntimeError(f"siuo score gen failed (exit {run['rc']}):\n{run['stderr'][-3000:]}")
    run["result"] = json.loads(Path(out).read_text(encoding="utf-8"))
    return run


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "processor": platform.processor() or platform.machine(),
    }


def emit(name: str, figures: dict) -> None:
    """The final line: one JSON object for scripts."""
    print(json.dumps({"benchmark": name, "machine": machine(), **figures}, sort_keys=True))
