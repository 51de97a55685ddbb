"""The lmms-eval environments SIUO is tested in, besides the main one: built as a user has them.

Each stack is a fresh virtualenv with torch, the stack's lmms-eval and transformers - what a user
already runs - into which siuo-task is then installed the way the README says (``pip install
<checkout>[local]``, from a wheel built once). :func:`build_stacks` builds them concurrently and
records what the install changed.

torch 2.14.1 / torchvision 0.29.1 (the versions on this machine's local wheel index; any other
version downloads gigabytes) come first. To keep CI short the new environment is seeded with the
running interpreter's distributions (torch included, when it has exactly those versions), hard-linked
file by file from each one's RECORD - seconds instead of minutes of unpacking 6 GB - except
siuo-task and lm-eval; pip then installs the stack's own versions (lmms-eval, transformers,
huggingface_hub) over that as a user would, swapping whatever they need otherwise.
Without that torch, torch comes from pip and nothing is seeded. Hard links are safe here: pip and
Python replace files, never write into them.
"""

from __future__ import annotations

import csv
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from siuo_dev.testing import build_wheel

TORCH = {"torch": "2.14.1", "torchvision": "0.29.1"}

# name -> (what it stands for, the requirements a user of that stack has installed)
STACKS = {
    "A": ("lmms-eval 0.6.1 + transformers 4.57.x + huggingface_hub 0.x", ["lmms-eval==0.6.1", "transformers==4.57.6", "huggingface_hub<1"]),
    "B": ("lmms-eval 0.7.3 + transformers 5.24.0", ["lmms-eval==0.7.3", "transformers==5.24.0"]),
    # 5.25.0 requires `kernels` (>=0.19.1,<0.20); pip brings it as a user's install would
    "C": ("lmms-eval 0.7.3 + transformers 5.25.0", ["lmms-eval==0.7.3", "transformers==5.25.0"]),
}
WATCHED = ("lmms-eval", "lmms_eval", "transformers", "torch", "torchvision")  # must not change
EXTRAS = "local"  # what a user running local model classes adds


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Stack:
    name: str
    label: str
    root: Path
    seconds: dict = field(default_factory=dict)
    prepared: dict = field(default_factory=dict)  # what ``build_stacks(then=...)`` made: name -> path or error
    before: dict = field(default_factory=dict)  # canonical name -> pip freeze line, before siuo-task
    after: dict = field(default_factory=dict)
    log: str = ""

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def lmms_eval(self) -> list:
        """The harness command; ``-P``: the working directory is not put on sys.path, so the stack
        imports the installed siuo-task even when run from this checkout."""
        return [self.python, "-P", "-m", "lmms_eval"]

    @property
    def siuo(self) -> str:
        return str(self.root / "bin" / "siuo")

    def changed(self, names=WATCHED) -> dict:
        wanted = {_canon(n) for n in names}
        return {n: (self.before.get(n), self.after.get(n)) for n in wanted if self.before.get(n) != self.after.get(n)}


def _freeze(python: str) -> dict:
    out = subprocess.run(
        [python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True, timeout=300, env={**os.environ, **ISOLATED}
    ).stdout
    lines = {}
    for line in out.splitlines():
        name = re.split(r"[=@ <>!~]", line.strip(), maxsplit=1)[0]
        if name:
            lines[_canon(name)] = line.strip()
    return lines


NOT_SEEDED = {"siuo-task", "lm-eval"}  # not part of a plain lmms-eval environment


def _seed(site: Path) -> bool:
    """Hard-link this interpreter's distributions (see the module doc) into ``site``."""
    try:
        if any(md.version(name) != version for name, version in TORCH.items()):
            return False
    except md.PackageNotFoundError:
        return False
    here = Path(sysconfig.get_paths()["purelib"])
    dists = {}
    for dist in md.distributions(path=[str(here)]):
        name = _canon(dist.metadata["Name"] or "")
        if name and name not in NOT_SEEDED and dist.read_text("direct_url.json") is None:
            dists.setdefault(name, dist)
    for dist in dists.values():
        record = dist.read_text("RECORD")
        if record is None:
            continue
        for row in csv.reader(record.splitlines()):
            rel = row[0] if row else ""
            if not rel or rel.startswith(("..", "/")):  # console scripts live outside site-packages
                continue
            src, dst = here / rel, site / rel
            if not src.is_file() or dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
    return True


# A stack is a user's environment: the developer's PYTHONPATH (this checkout, in the development
# setup) must not reach it, or pip would take the checkout's build metadata for an installed
# siuo-task and the stack would import the checkout instead of the wheel. Empty = unset for Python.
ISOLATED = {"PYTHONPATH": ""}


def _run(stack: Stack, *cmd, timeout: int = 900) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env={**os.environ, **ISOLATED})
    stack.log += f"$ {' '.join(cmd)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}\n"
    if proc.returncode != 0:
        raise RuntimeError(f"stack {stack.name}: `{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def build_stack(name: str, root: Path, wheel: Path) -> Stack:
    label, requirements = STACKS[name]
    stack = Stack(name, label, Path(root))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(stack.root)], check=True, timeout=300)
    site = Path(
        subprocess.run(
            [stack.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **ISOLATED},
        ).stdout.strip()
    )
    pip = [stack.python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not _seed(site):  # pip came with the seed; without it, from ensurepip
        _run(stack, stack.python, "-m", "ensurepip", "--default-pip")
        _run(stack, *pip, *(f"{n}=={v}" for n, v in TORCH.items()))
    stack.seconds["seed"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    _run(stack, *pip, *requirements)  # the user's environment
    stack.seconds["harness"] = time.perf_counter() - t1
    stack.before = _freeze(stack.python)
    t2 = time.perf_counter()
    _run(stack, *pip, f"{wheel}[{EXTRAS}]")  # what the README tells that user to do
    stack.seconds["siuo-task"] = time.perf_counter() - t2
    stack.after = _freeze(stack.python)
    return stack


def build_stacks(root: Path, names=tuple(STACKS), then=None) -> dict:
    """All stacks under ``root``, built concurrently (each mostly waits on pip and the disk);
    ``then(stack)`` runs in the stack's own thread once it is built (a fixture's extra preparation)."""
    root = Path(root)
    wheel = build_wheel(root / "wheel")

    def build(name):
        stack = build_stack(name, root / f"stack_{name}", wheel)
        if then is not None:
            then(stack)
        return stack

    with ThreadPoolExecutor(len(names)) as pool:
        futures = {name: pool.submit(build, name) for name in names}
        return {name: future.result() for name, future in futures.items()}
