"""The GPU check's batch-size stages (``scripts/gpu_check.py --issue25``): how long a full SIUO run
takes at a given batch size, whether batched answers equal unbatched ones, and where the time goes.

Stages, in the order they run (the most important first: events are written as they happen, and a
stage that would not finish in the time left is skipped with a ``skipped`` event, not killed):

1. ``full``: all 167 items of ``siuo_mcqa`` and ``siuo_gen`` at the tasks' own 5 and 500 new tokens,
   through the lmms-eval CLI at ``--full-batch`` (default: the largest of ``--batch-sizes``), fake
   judge; the wall time split into model load, task setup, generation per setting, judging and the
   rest; tokens/s and peak GPU memory per setting. Event ``full_run`` (``measured``: true).
2. ``invariance``: the first ``--inv-limit`` items per setting at batch 1 with ``--inv-tokens`` new
   tokens, against the full run's answers for the same items: greedy decoding gives each answer's
   first tokens whatever the budget, so the full run's first ``--inv-tokens`` tokens are what batch
   B answers there, and its MCQA answers (5 tokens) are compared with the first 5 tokens at batch 1.
   Share token-identical, MCQA decisions identical (``siuo_task.core.mcqa.parse_official``), first
   differing token of each differing answer. Event ``invariance``.
3. ``phases``: bare ``generate`` at batch 1 and B: time to first token against the decode step, the
   host's preprocessing (``siuo_dev.gpu_phases``); with the full run's split, event ``where_time_goes``.
4. ``model_args``: lmms-eval ``qwen2_5_vl`` settings (``--model-args-variants``: attention
   implementation, ``use_cache``) at batch B on a subset, each against the same run without it:
   speed and answers. Event ``model_args``; that baseline against batch 1 is a second ``invariance``.
5. ``sweep``: a full run at each other batch size of ``--batch-sizes``, extrapolated (``sweep_point``
   events say ``extrapolated: true`` and on what basis). Batch 1 needs no run of its own when stages
   2 and 3 ran: the invariance run's answers, each lengthened to the tasks' 5 / 500 tokens at the
   batch-1 decode step measured in stage 3. Other sizes: a subset (``--sweep-limit``, default the
   batch size, at least 2) at the tasks' token counts. The full run is the measured row.
6. ``classes``: the same question for other lmms-eval classes with tiny models: ``qwen2_vl`` and
   ``llava_hf`` at batch ``--class-batch`` against batch 1 (``class_batching``; a class that refuses
   batch > 1 is recorded as refusing). ``qwen2_vl_left_padded`` (the tiny Qwen2-VL whose tokenizer
   config says ``padding_side: left``) shows that the checkpoint decides how that class pads.

Runs with equal settings are made once and reused (``run`` events say ``reused``). The stages'
settings and plan: :mod:`siuo_dev.gpu_settings`; the checkpoints they run: :mod:`siuo_dev.gpu_checkpoints`.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
from pathlib import Path

from siuo_dev import gpu_analysis
from siuo_dev.gpu_checkpoints import CLASS_MODELS
from siuo_dev.gpu_events import Budget, emit
from siuo_dev.gpu_runs import SCRIPT, TimedRun, Tokenizer, error_text, protocol_tokens, pythonpath_env, timed_run
from siuo_dev.gpu_settings import STAGES, Settings

BIG_MODEL = "qwen2_5_vl"
REFUSAL_MARKERS = ("batch_size_per_gpu > 1", "Do not support batch")  # llava_hf's assertion in lmms-eval 0.7.3


class Issue25:
    def __init__(self, settings: Settings, work: Path, data_dir: Path, model_dir: Path):
        self.s, self.work, self.data_dir, self.model_dir = settings, work, data_dir, model_dir
        self.budget = Budget(settings.budget_s)
        self.rates = gpu_analysis.Rates() if settings.size == "7b" else gpu_analysis.Rates(fixed_run_s=15, step_s=0.05)
        self.protocol = protocol_tokens()
        self.tokenizer = Tokenizer(model_dir)
        self.runs: dict = {}
        self.full: TimedRun | None = None
        self.b1: TimedRun | None = None
        self.phases: dict = {}
        self.ok = True

    # ------------------------------------------------------------------------------- runs
    def _tokens(self, tokens: int | None) -> dict:
        return {s: tokens for s in ("mcqa", "gen")} if tokens is not None else dict(self.protocol)

    def run(
        self,
        name: str,
        batch: int,
        limit: int | None,
        tokens: int | None,
        extra: str = "",
        *,
        model: str = BIG_MODEL,
        model_dir: Path | None = None,
        tokenizer=None,
    ) -> TimedRun | None:
        model_dir = model_dir or self.model_dir
        limit = None if limit is not None and limit >= gpu_analysis.N_ITEMS else limit
        key = (model, str(model_dir), batch, limit, tokens, extra)
        if key in self.runs:
            emit("run", name=name, reused=self.runs[key].name)
            return self.runs[key]
        items = limit if limit is not None else gpu_analysis.N_ITEMS
        if not self.budget.skip_unless_fits(name, self.rates.run(batch, items, self._tokens(tokens))):
            return None
        result = timed_run(
            name,
            self.work,
            self.data_dir,
            model,
            model_dir,
            device=self.s.device,
            batch_size=batch,
            limit=limit,
            tokens=tokens,
            extra_model_args=extra,
            tokenizer=tokenizer or (self.tokenizer if model_dir == self.model_dir else None),
        )
        emit("run", **result.event())
        self.runs[key] = result
        return result

    def compare(self, reference: TimedRun, other: TimedRun, tokenizer: Tokenizer | None = None) -> dict | None:
        from siuo_task.core.mcqa import parse_official

        if reference.ids is None or other.ids is None:
            return None
        a, b = reference.budgets(), other.budgets()
        windows = {s: min(a.get(s, 0), b.get(s, 0)) for s in ("mcqa", "gen")}
        return gpu_analysis.compare_answers(reference.ids, other.ids, windows, (tokenizer or self.tokenizer).decode, parse_official)

    # ------------------------------------------------------------------------------- stages
    def stage_full(self) -> None:
        s = self.s
        self.full = full = self.run(f"full_b{s.batch}", s.batch, s.full_limit, s.tokens)
        if full is None:
            return
        self.ok &= full.ok
        if full.split is None:
            emit("full_run", ok=False, batch_size=s.batch, error=full.error)
            return
        self.rates.learn(full.split, s.batch)
        try:
            throughput = full.run.results().get("throughput")
        except AssertionError:
            throughput = None
        emit(
            "full_run",
            ok=full.ok,
            batch_size=s.batch,
            measured=True,
            all_items=full.limit is None,
            items=full.items,
            max_new_tokens=full.budgets(),
            protocol_tokens=full.budgets() == self.protocol,
            wall_s=full.split["cli_s"],
            parts=full.split["parts"],
            shares_pct=full.split["shares_pct"],
            tokens_per_s=full.split["tokens_per_s"],
            peak_gpu_memory_gib=full.split["peak_gpu_memory_gib"],
            lmms_eval_throughput=throughput,
            attn_implementation=full.split["attn_implementation"],
            error=full.error,
        )

    def stage_invariance(self) -> None:
        s = self.s
        self.b1 = b1 = self.run("invariance_b1", 1, s.inv_limit, s.inv_tokens)
        if b1 is None:
            return
        self.ok &= b1.ok
        if self.full is not None:
            self._emit_invariance(b1, self.full, f"batch {s.batch}, the full run")

    def _emit_invariance(self, b1: TimedRun, other: TimedRun, label: str, model: str = BIG_MODEL) -> None:
        comparison = self.compare(b1, other)
        if comparison is None:
            emit(
                "invariance",
                model=model,
                ok=False,
                reference="batch 1",
                other=label,
                error=f"token ids unavailable: batch 1: {b1.ids_note or b1.error}; {label}: {other.ids_note or other.error}",
            )
            self.ok = False
            return
        emit(
            "invariance",
            model=model,
            ok=True,
            reference="batch 1",
            other=label,
            batch_size=other.batch_size,
            device=self.s.device,
            size=self.s.size if model == BIG_MODEL else "tiny",
            **comparison,
        )

    def stage_phases(self) -> None:
        s = self.s
        sizes = sorted({1, s.batch})
        estimate = self.rates.fixed_run_s + sum(3 * (s.phase_tokens * self.rates.step_s + self.rates.prefill_s) for _ in sizes)
        if not self.budget.skip_unless_fits("phases", estimate):
            return
        out = self.work / "phases.json"
        out.unlink(missing_ok=True)
        cmd = [
            str(x)
            for x in (
                _python(),
                SCRIPT,
                "_phases",
                "--model",
                self.model_dir,
                "--data",
                self.data_dir,
                "--device",
                s.device,
                "--batch-sizes",
                ",".join(map(str, sizes)),
                "--tokens",
                s.phase_tokens,
                "--json",
                out,
            )
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=_env())
        if proc.returncode != 0 or not out.exists():
            emit("phases", ok=False, error=error_text(proc.stdout + proc.stderr))
            self.ok = False
            return
        found = json.loads(out.read_text())
        self.phases = {row["batch_size"]: row for row in found["rows"]}
        for row in found["rows"]:
            emit("phases", ok=row["fixed_length"], load_s=found["load_s"], **row)
        at_b = next(r for r in found["rows"] if r["batch_size"] == s.batch)
        if self.full is not None and self.full.split is not None:
            split = self.full.split
            gen_wall = split["generation_s"].get("gen") or 0.0
            outside = split["outside_model_generate_s"].get("gen") or 0.0
            emit(
                "where_time_goes",
                batch_size=s.batch,
                prefill_s_per_batch=at_b["time_to_first_token_s"],
                decode_step_s=at_b["decode_step_s"],
                prefill_share_pct_at_phase_tokens=at_b["prefill_share_pct"],
                phase_tokens=s.phase_tokens,
                full_run_parts=split["parts"],
                full_run_shares_pct=split["shares_pct"],
                gen_outside_model_generate_pct=round(100 * outside / gen_wall, 2) if gen_wall else None,
                siuo_hooks_pct_of_wall=round(100 * split["siuo_hooks_s"] / split["cli_s"], 3) if split["cli_s"] else None,
            )

    def stage_sweep(self) -> None:
        s = self.s
        rows = []
        if self.full is not None and self.full.split is not None:
            full_measured = self.full.limit is None
            rows.append(
                {
                    "batch_size": s.batch,
                    "extrapolated": not full_measured,
                    "measured_items": self.full.items,
                    "wall_s": self.full.split["cli_s"]
                    if full_measured
                    else gpu_analysis.extrapolate(self.full.split, s.batch, self.full.items)["wall_s"],
                    "tokens_per_s": self.full.split["tokens_per_s"],
                    "peak_gpu_memory_gib": self.full.split["peak_gpu_memory_gib"],
                }
            )
        for b in sorted(set(s.batch_sizes) - {s.batch}):
            step = (self.phases.get(1) or {}).get("decode_step_s")
            if b == 1 and self.b1 is not None and self.b1.split is not None and step:
                # no run of its own: the invariance run's batch-1 answers, lengthened to the tasks' tokens
                estimate = gpu_analysis.extrapolate_tokens(self.b1.split, step, self.protocol)
                row = {
                    "batch_size": 1,
                    "extrapolated": True,
                    "measured_items": self.b1.items,
                    "wall_s": estimate["wall_s"],
                    "tokens_per_s": self.b1.split["tokens_per_s"],
                    "peak_gpu_memory_gib": self.b1.split["peak_gpu_memory_gib"],
                }
                emit(
                    "sweep_point",
                    ok=self.b1.ok,
                    source="invariance_b1",
                    measured_wall_s=self.b1.split["cli_s"],
                    max_new_tokens=self.b1.budgets(),
                    protocol_tokens=False,
                    parts=estimate["parts"],
                    basis=estimate["basis"],
                    **row,
                )
                rows.append(row)
                continue
            limit = s.sweep_limit if s.sweep_limit is not None else max(2, b)
            run = self.run(f"sweep_b{b}", b, limit, s.tokens)
            if run is None:
                continue
            self.ok &= run.ok
            if run.split is None:
                emit("sweep_point", batch_size=b, ok=False, error=run.error)
                continue
            estimate = gpu_analysis.extrapolate(run.split, b, run.items)
            row = {
                "batch_size": b,
                "extrapolated": True,
                "measured_items": run.items,
                "wall_s": estimate["wall_s"],
                "tokens_per_s": run.split["tokens_per_s"],
                "peak_gpu_memory_gib": run.split["peak_gpu_memory_gib"],
            }
            emit(
                "sweep_point",
                ok=run.ok,
                source=run.name,
                measured_wall_s=run.split["cli_s"],
                max_new_tokens=run.budgets(),
                protocol_tokens=run.budgets() == self.protocol,
                parts=estimate["parts"],
                basis=estimate["basis"],
                **row,
            )
            rows.append(row)
        emit("sweep", rows=sorted(rows, key=lambda r: r["batch_size"]))

    def stage_model_args(self) -> None:
        s = self.s
        base = self.run(f"model_args_base_b{s.batch}", s.batch, s.model_args_limit, s.model_args_tokens)
        if base is None:
            return
        self.ok &= base.ok
        if self.b1 is not None:
            self._emit_invariance(self.b1, base, f"batch {s.batch} on the first {s.model_args_limit} items")
        for variant in s.model_args_variants:
            reason = self._unavailable(variant, base)
            if reason:
                emit("model_args", variant=variant, skipped=True, reason=reason)
                continue
            run = self.run(f"model_args_{_slug(variant)}", s.batch, s.model_args_limit, s.model_args_tokens, variant)
            if run is None:
                continue
            record = {"variant": variant, "ok": run.ok, "batch_size": s.batch, "error": run.error}
            if run.split and base.split:
                gen = lambda r: sum(v for v in r.split["generation_s"].values() if v)  # noqa: E731
                model = lambda r: sum(v for v in r.split["model_generate_s"].values() if v)  # noqa: E731
                record.update(
                    generation_s=round(gen(run), 3),
                    baseline_generation_s=round(gen(base), 3),
                    speedup=round(gen(base) / gen(run), 3) if gen(run) else None,
                    model_generate_speedup=round(model(base) / model(run), 3) if model(run) else None,
                    peak_gpu_memory_gib=run.split["peak_gpu_memory_gib"],
                    attn_implementation=run.split["attn_implementation"],
                )
            comparison = self.compare(base, run)
            record["answers"] = comparison if comparison is not None else f"token ids unavailable: {run.ids_note or run.error}"
            emit("model_args", **record)
            self.ok &= run.ok

    @staticmethod
    def _unavailable(variant: str, base: TimedRun) -> str | None:
        key, _, value = variant.partition("=")
        if key == "attn_implementation" and value == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            return "flash_attn is not installed here"
        if key == "attn_implementation" and base.split and base.split.get("attn_implementation") == value:
            return f"the class already loads the model with {value} (its default here)"
        return None

    def stage_classes(self) -> None:
        s = self.s
        for name in s.class_models:
            if name not in CLASS_MODELS:
                emit("class_batching", model=name, ok=False, error=f"unknown class model; choose from {', '.join(CLASS_MODELS)}")
                self.ok = False
                continue
            model, build, extra = CLASS_MODELS[name]
            model_dir = build(self.work / "tiny" / name)
            tok = Tokenizer(model_dir)
            batched = self.run(
                f"class_{name}_b{s.class_batch}",
                s.class_batch,
                s.class_limit,
                s.class_tokens,
                extra,
                model=model,
                model_dir=model_dir,
                tokenizer=tok,
            )
            if batched is None:
                continue
            log = batched.run.log if batched.run else ""
            if not batched.ok and any(m in log for m in REFUSAL_MARKERS):
                line = next(line for line in log.splitlines()[::-1] if any(m in line for m in REFUSAL_MARKERS))
                emit(
                    "class_batching",
                    model=name,
                    lmms_eval_model=model,
                    batch_size=s.class_batch,
                    refused=True,
                    error=line.strip()[:300],
                    device=s.device,
                )
                continue
            single = self.run(f"class_{name}_b1", 1, s.class_limit, s.class_tokens, extra, model=model, model_dir=model_dir, tokenizer=tok)
            if single is None:
                continue
            comparison = self.compare(single, batched, tok) if batched.ok and single.ok else None
            emit(
                "class_batching",
                model=name,
                lmms_eval_model=model,
                batch_size=s.class_batch,
                refused=False,
                device=s.device,
                ok=comparison is not None,
                error=None if comparison else (batched.error or single.error or batched.ids_note),
                **(comparison or {}),
            )
            self.ok &= comparison is not None

    def run_all(self) -> bool:
        for stage in STAGES:
            if stage in self.s.stages:
                start = time.perf_counter()
                try:
                    getattr(self, f"stage_{stage}")()
                except Exception as exc:  # noqa: BLE001 - one stage's failure must not lose the others
                    import traceback

                    emit("error", stage=stage, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-3000:])
                    self.ok = False
                emit("stage_done", stage=stage, seconds=round(time.perf_counter() - start, 1), elapsed_s=round(self.budget.elapsed(), 1))
        return self.ok


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def _python() -> str:
    from siuo_dev.lmms_eval_runs import PYTHON

    return PYTHON


def _env() -> dict:
    import os

    return {**os.environ, **pythonpath_env(), "HF_HUB_OFFLINE": "1"}
