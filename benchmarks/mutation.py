"""Mutation-testing benchmark: how many small plausible bugs in the scoring core the fast tests catch.

It runs mutmut (https://github.com/boxed/mutmut, 3.x) over the targets listed in
``benchmarks/mutation_targets.txt`` (the pure core: data, prompts, mcqa, verdicts, metrics, scoring,
the judge's cache key, and ``siuo verify``'s recomputation) against the fast unit tests
(``-m "not e2e"``), then prints

    kill rate = killed / (mutants - equivalent mutants)

Equivalent mutants (changes that cannot alter behaviour) are listed with their reason in
``benchmarks/mutation_equivalent.txt`` and left out of the denominator; the script prints them, and
warns about listed names that no longer survive or no longer exist. Mutants with no covering test
and timeouts are counted as they are (timeouts as killed, "no tests" as survived), never dropped.

mutmut is not a dependency of the package or of CI: install it into the environment first,

    python -m pip install "mutmut>=3.8,<4"

then run (about 20-30 minutes on 2 cores; it works on a copy of the repository in a scratch folder):

    python benchmarks/mutation.py [--max-children 2] [--work-dir DIR] [--target 90]
    python benchmarks/mutation.py --work-dir DIR --no-run   # summarise the run kept in DIR again

The last line is one JSON object for scripts. Exit status 0 when the kill rate reaches the target,
1 below it, 2 when the run itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
TARGETS_FILE = HERE / "mutation_targets.txt"
EQUIVALENT_FILE = HERE / "mutation_equivalent.txt"
# The fast unit tests of the pure core (test_judge.py for the cache key); each mutant runs only those
# of them that execute the mutated function (mutmut records that in a first, clean pass). The
# end-to-end generation tests (test_gen_scoring.py: real HTTP, child processes) are left out: the
# same code is checked through scoring.assemble_gen/score_gen with hand-built replies in test_oracles.py;
# verify's recomputation through test_verify_recompute.py (results made by the scorer, no judge server).
TEST_FILES = (
    "tests/test_metrics.py",
    "tests/test_mcqa.py",
    "tests/test_mcqa_scoring.py",
    "tests/test_prompts.py",
    "tests/test_data.py",
    "tests/test_oracles.py",
    "tests/test_golden.py",
    "tests/test_verdicts.py",
    "tests/test_judge.py",
    "tests/test_verify_recompute.py",
    "tests/test_harness_stderr.py",  # scoring.item_score, the per-item scores behind the harness's standard errors
)
PYTEST_ARGS = ("-m", "not e2e and not upstream_bugs", "-p", "no:cacheprovider", "-q")
COPY = ("siuo_task", "siuo_dev", "tests", "pyproject.toml", "README.md", "PROTOCOL.md")


def read_targets(path: Path = TARGETS_FILE) -> list[tuple[str, str | None]]:
    """``[(module path, function or None)]`` from the targets file."""
    targets = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        file, _, function = line.partition("::")
        if not (REPO / file).is_file():
            raise SystemExit(f"{path.name}: target {file} does not exist in {REPO}")
        targets.append((file, function or None))
    if not targets:
        raise SystemExit(f"{path.name}: no targets")
    return targets


def mutant_glob(file: str, function: str | None) -> str:
    """The mutmut mutant-name pattern for one target (mutmut names mutants ``module.x_func__mutmut_N``,
    methods ``module.xǁClassǁmethod__mutmut_N``)."""
    module = file[: -len(".py")].replace("/", ".")
    if module.endswith(".__init__"):  # a package: its own functions only, not its modules'
        module = module[: -len(".__init__")]
        if function is None:
            return f"{module}.x*"
    if function is None:
        return f"{module}.*"
    if "." in function:
        cls, method = function.split(".", 1)
        return f"{module}.x\u01c1{cls}\u01c1{method}__mutmut_*"
    return f"{module}.x_{function}__mutmut_*"


def read_equivalents(path: Path = EQUIVALENT_FILE) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, reason = line.partition("#")
        found[name.strip()] = reason.strip()
    return found


def prepare(work: Path, targets) -> None:
    """A copy of the repository with a [tool.mutmut] section; mutmut writes its ``mutants/`` there."""
    for name in COPY:
        src, dst = REPO / name, work / name
        if dst.exists():
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.is_file():
            shutil.copy2(src, dst)
    files = sorted({file for file, _ in targets})
    toml = lambda values: "[" + ", ".join(json.dumps(v) for v in values) + "]"  # noqa: E731
    config = (
        "\n\n[tool.mutmut]\n"
        'source_paths = ["siuo_task"]\n'
        f"only_mutate = {toml(files)}\n"
        f"pytest_add_cli_args_test_selection = {toml([t for t in TEST_FILES if (REPO / t).is_file()])}\n"
        f"pytest_add_cli_args = {toml(PYTEST_ARGS)}\n"
        'also_copy = ["siuo_dev", "README.md", "PROTOCOL.md"]\n'
        "use_git_change_detection = false\n"
    )
    with (work / "pyproject.toml").open("a", encoding="utf-8") as fh:
        fh.write(config)


def collect(work: Path, globs: list[str]) -> dict[str, int | None]:
    """``{mutant name: exit code}`` for the mutants the targets select."""
    import fnmatch

    codes: dict[str, int | None] = {}
    for meta in (work / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        for name, code in data["exit_code_by_key"].items():
            if any(fnmatch.fnmatchcase(name, g) for g in globs):
                codes[name] = code
    return codes


def classify(code: int | None) -> str:
    if code in (1, 3):
        return "killed"
    if code in (36, 24, -24, 152, 255):
        return "timeout"  # the mutant made the tests hang: caught
    if code == 0:
        return "survived"
    if code in (5, 33):
        return "no tests"
    if code is None:
        return "not checked"
    return f"suspicious (exit {code})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="parallel mutant runs (default: CPU count)")
    parser.add_argument("--work-dir", type=Path, help="scratch folder (kept, reused for reruns); default: a temporary one, removed")
    parser.add_argument("--target", type=float, default=90.0, help="kill rate to reach, in percent (default 90)")
    parser.add_argument("--show", type=int, default=40, help="print the diff of at most this many survivors (default 40)")
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="only summarise the last run kept in --work-dir (after editing the equivalents list, or after "
        "re-running single mutants there with `python -m mutmut run NAME`)",
    )
    args = parser.parse_args(argv)

    try:
        import mutmut  # noqa: F401
    except ImportError:
        print(
            'mutmut is not installed here. Install it (not a dependency of siuo-task):\n    python -m pip install "mutmut>=3.8,<4"',
            file=sys.stderr,
        )
        return 2
    targets = read_targets()
    globs = [mutant_glob(f, fn) for f, fn in targets]
    equivalents = read_equivalents()

    tmp = None
    if args.no_run and args.work_dir is None:
        parser.error("--no-run needs --work-dir")
    if args.no_run:
        work = args.work_dir.resolve()
    elif args.work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="siuo-mutation-")
        work = Path(tmp.name)
    else:
        work = args.work_dir.resolve()
        work.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(work / "mutants", ignore_errors=True)  # always a fresh run
    try:
        env = dict(os.environ)
        env.setdefault("SIUO_DATA_DIR", str(REPO.parent / "shared" / "siuo"))
        wall, returncode = 0.0, 0
        if not args.no_run:
            prepare(work, targets)
            print(f"mutating: {', '.join(f + ('::' + fn if fn else '') for f, fn in targets)}", flush=True)
            print(f"tests: {' '.join(TEST_FILES)} {' '.join(PYTEST_ARGS)}", flush=True)
            start = time.monotonic()
            returncode = subprocess.run(
                [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children), *globs], cwd=work, env=env
            ).returncode
            wall = time.monotonic() - start
        codes = collect(work, globs)
        if returncode != 0 or not codes:
            print(f"mutmut run failed (exit {returncode}, {len(codes)} mutants found in {work})", file=sys.stderr)
            return 2
        status = {name: classify(code) for name, code in codes.items()}
        killed = sorted(n for n, s in status.items() if s in ("killed", "timeout"))
        equivalent = sorted(n for n in status if n in equivalents and n not in killed)
        survivors = sorted(n for n in status if n not in killed and n not in equivalents)
        stale = sorted(n for n in equivalents if n not in status or n in killed)
        denominator = len(status) - len(equivalent)
        rate = 100.0 * len(killed) / denominator if denominator else 0.0

        per_target = {}
        import fnmatch

        for (file, fn), g in zip(targets, globs):
            names = [n for n in status if fnmatch.fnmatchcase(n, g)]
            eq = [n for n in names if n in equivalent]
            k = [n for n in names if n in killed]
            per_target[file + (f"::{fn}" if fn else "")] = {"mutants": len(names), "killed": len(k), "equivalent": len(eq)}

        print()
        print(f"{'target':42} {'mutants':>8} {'killed':>7} {'equiv':>6} {'rate':>7}")
        for name, row in per_target.items():
            d = row["mutants"] - row["equivalent"]
            print(f"{name:42} {row['mutants']:8} {row['killed']:7} {row['equivalent']:6} {(100.0 * row['killed'] / d if d else 0):6.1f}%")
        print()
        if equivalent:
            print(f"equivalent mutants left out of the denominator ({len(equivalent)}, reasons in {EQUIVALENT_FILE.name}):")
            for name in equivalent:
                print(f"  {name}: {equivalents[name]}")
        if stale:
            print(
                f"WARNING: {len(stale)} entries of {EQUIVALENT_FILE.name} no longer survive or no longer exist "
                f"(remove them, or the source moved and renumbered its mutants): {', '.join(stale)}"
            )
        unchecked = [n for n in survivors if status[n] == "not checked"]
        if unchecked:
            print(f"WARNING: {len(unchecked)} mutants were not checked (an interrupted or running mutmut run); they count as surviving")
        if survivors:
            print(f"surviving mutants ({len(survivors)}):")
            for name in survivors:
                print(f"  {name}: {status[name]}")
            for name in survivors[: args.show]:
                diff = subprocess.run(
                    [sys.executable, "-m", "mutmut", "show", name], cwd=work, env=env, capture_output=True, text=True
                ).stdout
                print(diff.rstrip())
        print()
        print(
            f"kill rate: {len(killed)} killed / {denominator} non-equivalent mutants = {rate:.1f}% "
            f"(target >= {args.target:g}%; {len(status)} mutants, {len(equivalent)} equivalent, "
            f"{len(survivors)} surviving; {wall:.0f} s with {args.max_children} workers)"
        )
        print(
            json.dumps(
                {
                    "benchmark": "mutation",
                    "tool": f"mutmut {__import__('mutmut').__version__}",
                    "kill_rate": round(rate, 1),
                    "killed": len(killed),
                    "non_equivalent": denominator,
                    "mutants": len(status),
                    "equivalent": len(equivalent),
                    "survivors": survivors,
                    "stale_equivalents": stale,
                    "per_target": per_target,
                    "target": args.target,
                    "wall_s": round(wall, 1),
                    "workers": args.max_children,
                }
            )
        )
        return 0 if rate >= args.target else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
