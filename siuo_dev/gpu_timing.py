"""lmms-eval's CLI with timing taken from inside (the child side of a timed GPU-check run).

``python scripts/gpu_check.py _timed_lmms_eval TIMING.jsonl <lmms-eval arguments>`` runs the real
CLI in this process after wrapping, without changing what they do:

- SIUO's hooks: ``process_docs`` (data check and judge preflight), the request hooks (prompt, image)
  and the aggregations (scoring; for the generation tasks the judge), each timed;
- the model class the CLI asks for: its constructor (model load) and ``generate_until``;
- the loaded model's ``generate``: wall time (CUDA synchronised), peak GPU memory (reset before each
  call), the new token ids of every row, and which SIUO items the rows are. A chat class calls
  ``doc_to_messages`` (a simple class ``doc_to_visual``) once per row of the batch, in order, right
  before ``generate``; the rows are matched to those calls, and the parent checks the match by
  decoding the ids and comparing them with the answers the harness recorded.

Each measurement is one JSON line in TIMING.jsonl with a ``kind``: ``process_start``, ``model_load``,
``process_docs``, ``generate_until``, ``generate``, ``aggregate``, ``exit``. Times are epoch seconds
(``time.time()``), comparable with the parent's clock.
"""

from __future__ import annotations

import atexit
import functools
import json
import sys
import time
from pathlib import Path

REQUEST_HOOKS = ("doc_to_visual", "mcqa_doc_to_text", "gen_doc_to_text", "mcqa_doc_to_messages", "gen_doc_to_messages")
ROW_HOOKS = ("doc_to_visual", "mcqa_doc_to_messages", "gen_doc_to_messages")  # called once per batch row
DOCS_HOOKS = ("mcqa_process_docs", "gen_process_docs", "gen_vote3_process_docs")
AGGREGATIONS = {
    "aggregate_accuracy": "mcqa",
    "aggregate_unparsed": "mcqa",
    "aggregate_safe": "gen",
    "aggregate_effective": "gen",
    "aggregate_safe_effective": "gen",
}


def setting_of(doc) -> str:
    """``mcqa`` or ``gen``: an MCQA item has options, a generation item has none."""
    return "mcqa" if isinstance(doc, dict) and doc.get("options") else "gen"


def _peak_gib():
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def trim_ids(ids: list, eos) -> list:
    """The new tokens up to and including the first end-of-sequence id (what follows is padding)."""
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
    for i, token in enumerate(ids):
        if token in eos_ids:
            return ids[: i + 1]
    return ids


class Recorder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.depth = 0
        self.hook_seconds = 0.0
        self.pending: list = []  # (setting, question_id) of the rows the class is preparing

    def write(self, kind: str, **fields) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"kind": kind, **fields}, default=str) + "\n")

    # ------------------------------------------------------------------------------- SIUO's hooks
    def request_hook(self, name, fn):
        @functools.wraps(fn)
        def hook(*a, **k):
            outer = self.depth == 0
            if outer and name in ROW_HOOKS and a:
                doc = a[0]
                self.pending.append((setting_of(doc), doc.get("question_id") if isinstance(doc, dict) else None))
            self.depth += 1
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.depth -= 1
                if outer:  # nested hook calls count once
                    self.hook_seconds += time.perf_counter() - start

        return hook

    def timed(self, kind: str, fn, **fields):
        @functools.wraps(fn)
        def wrapped(*a, **k):
            start = time.time()
            try:
                return fn(*a, **k)
            finally:
                end = time.time()
                self.write(kind, start=start, end=end, seconds=end - start, **fields)

        return wrapped

    def patch_hooks(self) -> None:
        # Where the task's utils.py imports them from: lmms-eval binds them when it loads the task,
        # after this.
        from siuo_task.harnesses.lmms_eval import hooks

        for name in REQUEST_HOOKS:
            setattr(hooks, name, self.request_hook(name, getattr(hooks, name)))
        for name in DOCS_HOOKS:
            setattr(hooks, name, self.timed("process_docs", getattr(hooks, name), hook=name))
        for name, setting in AGGREGATIONS.items():
            setattr(hooks, name, self.timed("aggregate", getattr(hooks, name), hook=name, setting=setting))

    # ------------------------------------------------------------------------------- the model
    def patch_generate(self, model) -> None:
        if getattr(model, "_siuo_timed_generate", False):
            return
        original = model.generate
        recorder = self

        def generate(*a, **k):
            import torch

            rows_items, recorder.pending = recorder.pending, []
            _sync()
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            start = time.time()
            out = original(*a, **k)
            _sync()
            end = time.time()
            record = {
                "start": start,
                "end": end,
                "seconds": end - start,
                "peak_gpu_memory_gib": _peak_gib(),
                "max_new_tokens": k.get("max_new_tokens"),
                "use_cache": k.get("use_cache"),
            }
            input_ids = k.get("input_ids", a[0] if a and isinstance(a[0], torch.Tensor) else None)
            sequences = out if isinstance(out, torch.Tensor) else getattr(out, "sequences", None)
            if input_ids is not None and sequences is not None:
                rows, input_len = input_ids.shape
                new = [trim_ids(row, k.get("eos_token_id")) for row in sequences[:, input_len:].tolist()]
                record.update(rows=rows, input_tokens=input_len, new_tokens=[len(r) for r in new], ids=new)
                record["items"] = [list(item) for item in rows_items] if len(rows_items) == rows else None
                record["row_hook_calls"] = len(rows_items)
            recorder.write("generate", **record)
            return out

        model.generate = generate
        model._siuo_timed_generate = True

    def patch_model_class(self, cls) -> None:
        if getattr(cls, "_siuo_timed", False):
            return
        recorder = self
        init, generate_until = cls.__init__, cls.generate_until

        @functools.wraps(init)
        def __init__(self, *a, **k):
            start = time.time()
            init(self, *a, **k)
            end = time.time()
            model = getattr(self, "model", None)
            config = getattr(model, "config", None)
            recorder.write(
                "model_load",
                start=start,
                end=end,
                seconds=end - start,
                model_class=f"{cls.__module__}.{cls.__name__}",
                attn_implementation=getattr(config, "_attn_implementation", None),
                batch_size=getattr(self, "batch_size_per_gpu", None),
                peak_gpu_memory_gib=_peak_gib(),
            )

        @functools.wraps(generate_until)
        def timed_generate_until(self, requests):
            recorder.patch_generate(self.model)
            recorder.hook_seconds, recorder.pending = 0.0, []
            start = time.time()
            result = generate_until(self, requests)
            end = time.time()
            recorder.write(
                "generate_until", start=start, end=end, seconds=end - start, requests=len(requests), siuo_hook_seconds=recorder.hook_seconds
            )
            return result

        cls.__init__ = __init__
        cls.generate_until = timed_generate_until
        cls._siuo_timed = True


def main(argv: list) -> None:
    timing_path, args = Path(argv[0]), argv[1:]
    recorder = Recorder(timing_path)
    recorder.write("process_start", t=time.time())
    atexit.register(lambda: recorder.write("exit", t=time.time()))
    from lmms_eval import models

    recorder.patch_hooks()
    original_get_model = models.get_model

    def get_model(name, force_simple=False):
        cls = original_get_model(name, force_simple)
        recorder.patch_model_class(cls)
        return cls

    models.get_model = get_model
    from lmms_eval.cli.dispatch import main as lmms_eval_main

    sys.argv = ["lmms_eval", *args]
    lmms_eval_main()
