"""One timed lmms-eval run for the GPU check (the parent side of ``siuo_dev.gpu_timing``).

:func:`timed_run` runs the real CLI (``scripts/gpu_check.py _timed_lmms_eval``) on ``siuo_mcqa`` and
``siuo_gen`` against a fresh fake judge, checks what it wrote like the CPU tests do
(``siuo_dev.lmms_eval_runs``), splits its wall time (``siuo_dev.gpu_analysis.time_split``) and
collects each item's new token ids, checked against the answers the harness recorded: decoded, the
ids must give exactly those answers, or they are not used.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from dataclasses import dataclass, field
from pathlib import Path

from siuo_dev import gpu_analysis
from siuo_dev.lmms_eval_runs import PYTHON, Run, check_gen, check_mcqa, model_run_args, run_lmms_eval

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.py"
SETTINGS = ("mcqa", "gen")


def include_path_args() -> list:
    """``--include_path`` when siuo-task's lmms-eval entry point is not installed (repo on PYTHONPATH)."""
    from siuo_task.harnesses.paths import lmms_eval_tasks_dir

    names = {ep.name for ep in md.entry_points(group="lmms_eval.models")}
    return [] if "siuo_task" in names else ["--include_path", str(lmms_eval_tasks_dir())]


def pythonpath_env() -> dict:
    paths = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def fresh(path: Path) -> Path:
    """An empty folder: a second run in the same work folder must not find the first one's results."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def error_text(text: str, keep: int = 3000) -> str:
    """An error for the log: its start (the assertion's own words) and its end (the log tail)."""
    return text if len(text) <= keep else text[: keep // 3] + "\n[...]\n" + text[-(2 * keep) // 3 :]


def protocol_tokens() -> dict:
    """``{setting: max_new_tokens}`` of the SIUO lmms-eval task YAMLs (the protocol's 5 and 500)."""
    import yaml

    from siuo_task.harnesses.paths import lmms_eval_tasks_dir

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # the hooks' !function tags
    folder = lmms_eval_tasks_dir() / "siuo"
    return {
        s: yaml.load((folder / f"siuo_{s}.yaml").read_text(encoding="utf-8"), Loader)["generation_kwargs"]["max_new_tokens"]
        for s in SETTINGS
    }


class Tokenizer:
    """The checkpoint's tokenizer, decoding as lmms-eval's classes do."""

    def __init__(self, model_dir):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(model_dir))

    def decode(self, ids: list) -> str:
        return self.tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


@dataclass
class TimedRun:
    name: str
    model: str
    batch_size: int
    limit: int | None
    tokens: int | None  # the --gen_kwargs max_new_tokens override, None: the tasks' own
    model_args: str
    run: Run | None = None
    records: list = field(default_factory=list)
    ok: bool = False
    error: str | None = None
    split: dict | None = None
    ids: dict | None = None  # {(setting, question_id): new token ids}, checked against the answers
    ids_note: str | None = None

    @property
    def items(self) -> dict:
        n = self.limit if self.limit is not None else gpu_analysis.N_ITEMS
        return {s: min(n, gpu_analysis.N_ITEMS) for s in SETTINGS}

    def budgets(self) -> dict:
        return gpu_analysis.budgets(self.records)

    def event(self) -> dict:
        """What the ``run`` event says about it (no token ids, no answers)."""
        return {
            "name": self.name,
            "model": self.model,
            "batch_size": self.batch_size,
            "limit": self.limit,
            "items": self.items,
            "max_new_tokens": self.budgets(),
            "model_args_extra": self.model_args,
            "ok": self.ok,
            "error": error_text(self.error, 1500) if self.error else None,
            "ids": "captured" if self.ids is not None else self.ids_note,
            **({"split": self.split} if self.split else {}),
        }


def lmms_eval_args(model: str, model_args: str, *, device: str, batch_size: int, limit: int | None, tokens: int | None) -> list:
    tasks = "siuo_mcqa,siuo_gen"
    return (
        model_run_args(model, model_args, tasks, limit, device=device, batch_size=batch_size, max_new_tokens=tokens) + include_path_args()
    )


def timed_run(
    name: str,
    work: Path,
    data_dir: Path,
    model: str,
    model_dir: Path,
    *,
    device: str,
    batch_size: int,
    limit: int | None = None,
    tokens: int | None = None,
    extra_model_args: str = "",
    tokenizer: Tokenizer | None = None,
    timeout: int = 1800,
) -> TimedRun:
    device_map = "cuda" if device.startswith("cuda") else "cpu"
    model_args = ",".join(a for a in (f"pretrained={model_dir}", f"device_map={device_map}", extra_model_args) if a)
    result = TimedRun(name, model, batch_size, limit, tokens, extra_model_args)
    folder = fresh(work / "runs" / name)
    timing = folder / "timing.jsonl"
    launcher = [PYTHON, str(SCRIPT), "_timed_lmms_eval", str(timing)]
    args = lmms_eval_args(model, model_args, device=device, batch_size=batch_size, limit=limit, tokens=tokens)
    result.run = run = run_lmms_eval(folder / "out", data_dir, args, launcher=launcher, extra_env=pythonpath_env(), timeout=timeout)
    result.records = gpu_analysis.read_timing(timing)
    n = result.items["mcqa"]
    try:
        check_mcqa(run, data_dir, n)
        check_gen(run, data_dir, n)
        result.ok = True
    except (AssertionError, KeyError) as exc:
        result.error = error_text(f"{type(exc).__name__}: {exc}")
    if not any(r["kind"] == "generate" for r in result.records):
        result.ok = False
        result.error = (result.error or "") + " | no generation recorded; log tail: " + run.log[-2000:]
        return result
    result.split = gpu_analysis.time_split(run.seconds, result.records)
    ids = gpu_analysis.ids_by_item(result.records)
    if ids is None:
        result.ids_note = "rows not matched to items (the class called the row hooks otherwise than once per row)"
    elif result.ok:
        tokenizer = tokenizer or Tokenizer(model_dir)
        answers = run.answers()
        wrong = [key for key, text in answers.items() if key not in ids or tokenizer.decode(ids[key]).strip() != text.strip()]
        if wrong:
            result.ids_note = f"ids do not decode to the recorded answers for {len(wrong)} item(s), e.g. {wrong[:3]}"
        else:
            result.ids = {key: ids[key] for key in answers}
    return result
