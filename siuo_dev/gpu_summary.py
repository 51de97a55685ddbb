"""The GPU check's closing summary: its events (``siuo_dev.gpu_events``) as lines a person reads.

Numbers are printed as the events hold them; an estimate says it is extrapolated, a run at other
token counts than the tasks' own or on a subset says so.
"""

from __future__ import annotations


def summary(log: list) -> None:
    lines = ["", "== SIUO gpu_check summary =="]
    for r in log:
        e = r["event"]
        if e == "env":
            lines.append(
                f"env: torch {r['torch']}, transformers {r['transformers']}, lmms-eval {r['lmms_eval']}, "
                f"device {r['device']} {r.get('gpu', '')}"
            )
        elif e == "tiny":
            status = "OK" if r.get("ok") else "FAILED"
            extra = f", reference mismatches {r['reference_mismatches']}" if "reference_mismatches" in r else ""
            lines.append(
                f"tiny {r['model']:<11} bs={r['batch_size']} {status}  cli {r['cli_seconds']} s{extra}"
                + ("" if r.get("ok") else f"\n    {r.get('error', '')[:500]}")
            )
        elif e == "big_build":
            lines.append(
                f"big model {r['size']}: "
                + ("reused from an earlier check" if r.get("reused") else f"built in {r['seconds']} s, {r['checkpoint_gib']} GiB on disk")
            )
        elif e in ("big_bare", "big_harness") and not r.get("ok"):
            lines.append(f"{e} FAILED: {r.get('error', '')[:800]}")
        elif e == "big_repeats":
            lines.append(
                f"harness/bare over {r['repeats']} repeats: {r['harness_over_bare']} (min {r['min']}, median {r['median']}, max {r['max']})"
            )
        elif e == "big_summary":
            if "repeat" in r:
                lines.append(f"-- repeat {r['repeat']}")
            lines.append(f"bare transformers: {r['bare_items_per_s']} items/s, peak {r['bare_peak_gpu_memory_gib']} GiB")
            lines.append(
                f"lmms-eval + SIUO:  {r['harness_items_per_s']} items/s, peak {r['harness_peak_gpu_memory_gib']} GiB "
                f"(CLI wall {r['harness_cli_seconds']} s incl. startup, load, judge)"
            )
            lines.append(
                f"harness/bare = {r['harness_over_bare']}  (overhead {r['overhead_pct']} %), "
                f"{r['items']} items x {r['max_new_tokens']} tokens, batch {r['batch_size']}"
            )
            lines.append(
                f"  extra s/item {r.get('extra_seconds_per_item')}: SIUO hooks {r.get('siuo_hooks_seconds_per_item')}, "
                f"model.generate {r.get('model_generate_extra_seconds_per_item')}, "
                f"rest of the class {r.get('class_rest_extra_seconds_per_item')}"
            )
            if r.get("bare_no_grad_items_per_s") is not None:
                lines.append(
                    f"  bare loop without inference_mode (as the class calls generate): {r['bare_no_grad_items_per_s']} "
                    f"items/s; harness/that = {r['harness_over_bare_no_grad']}"
                )
        elif e == "error":
            lines.append(f"ERROR{' in ' + r['stage'] if r.get('stage') else ''}: {r['error']}")
    lines += issue25_lines(log)
    print("\n".join(lines), flush=True)


def issue25_lines(log: list) -> list:
    """The batch-size stages' events (``siuo_dev.gpu_issue25``), one line or a few each."""
    lines = []
    for r in log:
        e = r["event"]
        if e == "plan":
            lines.append(f"plan: stages {', '.join(r['stages'])}; estimate {r['estimate_total_s']} s (budget {r['budget_s'] or 'none'})")
        elif e == "full_run":
            if not r.get("measured"):
                lines.append(f"full run at batch {r.get('batch_size')}: FAILED {str(r.get('error'))[:300]}")
                continue
            scope = "all 167 items per setting" if r["all_items"] else f"ONLY {r['items']} items per setting (not a full run)"
            tokens = "the tasks' own token counts" if r["protocol_tokens"] else f"max_new_tokens {r['max_new_tokens']} (NOT the protocol's)"
            lines.append(
                f"full run, measured: batch {r['batch_size']}, {scope}, {tokens}: {r['wall_s']} s wall"
                + ("" if r["ok"] else "  [checks FAILED]")
            )
            lines.append("  " + ", ".join(f"{k[:-2]} {v} s" for k, v in r["parts"].items()))
            lines.append(f"  tokens/s {r['tokens_per_s']}, peak GPU memory {r['peak_gpu_memory_gib']} GiB")
        elif e == "invariance" and r.get("ok"):
            parts = []
            for s in ("mcqa", "gen"):
                if s in r:
                    row = r[s]
                    text = f"{s} {row['identical']}/{row['items']} token-identical over {row['window_tokens']} tokens"
                    if s == "mcqa":
                        text += f", decisions {row['decisions_identical']}/{row['items']} identical"
                    if row["first_difference"]:
                        text += f", first difference at token {row['first_difference']}"
                    parts.append(text)
            lines.append(f"invariance {r['model']} batch 1 vs {r['other']}: " + "; ".join(parts))
        elif e == "invariance":
            lines.append(f"invariance {r['model']} vs {r['other']}: FAILED {r.get('error', '')[:300]}")
        elif e == "phases" and "batch_size" in r:
            lines.append(
                f"phases batch {r['batch_size']}: first token {r['time_to_first_token_s']} s, decode step "
                f"{r['decode_step_s']} s, {r['tokens_per_s']} tokens/s, peak {r['peak_gpu_memory_gib']} GiB"
            )
        elif e == "sweep":
            for row in r["rows"]:
                label = "extrapolated" if row["extrapolated"] else "measured"
                lines.append(
                    f"sweep batch {row['batch_size']:>3}: {row['wall_s']} s for the full run ({label}), "
                    f"tokens/s {row['tokens_per_s']}, peak {row['peak_gpu_memory_gib']} GiB"
                )
        elif e == "model_args":
            if r.get("skipped"):
                lines.append(f"model_args {r['variant']}: skipped ({r['reason']})")
            else:
                answers = r.get("answers")
                same = (
                    ", ".join(f"{s} {answers[s]['identical']}/{answers[s]['items']} identical" for s in ("mcqa", "gen") if s in answers)
                    if isinstance(answers, dict)
                    else answers
                )
                lines.append(f"model_args {r['variant']}: speedup {r.get('speedup')} vs default; answers {same}")
        elif e == "class_batching":
            if r.get("refused"):
                lines.append(f"class {r['model']} at batch {r['batch_size']}: refused by the class ({r['error'][:160]})")
            elif r.get("ok"):
                lines.append(
                    f"class {r['model']} batch {r['batch_size']} vs 1: "
                    + "; ".join(f"{s} {r[s]['identical']}/{r[s]['items']} identical" for s in ("mcqa", "gen") if s in r)
                )
            else:
                lines.append(f"class {r['model']}: FAILED {str(r.get('error'))[:300]}")
        elif e == "skipped":
            lines.append(f"SKIPPED {r['stage']}: needs ~{r['estimate_s']} s, {r['left_s']} s left of {r['budget_s']}")
    return lines
