"""Agreement between two judges that graded the same generation answers.

Per metric (safe, effective, safe_effective) on the items where both judges reached a verdict:
the share of items with the same verdict, Cohen's kappa, and the items they disagree on.
"""

from __future__ import annotations

from pathlib import Path

from siuo_task.core import metrics
from siuo_task.core.schema import GEN_METRICS, GEN_TASKS
from siuo_task.results.io import ReportInputError, answers_by_qid, checked_result, looks_like_siuo_result, read_json


def load_gen_result(path: str) -> dict:
    payload = read_json(Path(path))
    if not looks_like_siuo_result(payload):
        raise ReportInputError(f"{path}: not a SIUO result file (expected task/metrics/provenance, as `siuo score gen` writes)")
    checked_result(path, payload)
    if payload["task"] not in GEN_TASKS:
        raise ReportInputError(f"{path}: a {payload['task']} result; judge agreement needs generation results ({', '.join(GEN_TASKS)})")
    if not payload.get("items"):
        raise ReportInputError(f"{path}: no per-item verdicts in this result")
    return payload


def _judge(result: dict) -> dict:
    return (result.get("provenance") or {}).get("judge") or {}


def check_same_answers(a: dict, b: dict, label_a: str, label_b: str) -> None:
    """Refuse (``ReportInputError``) unless both results graded exactly the same answers."""
    answers_a, answers_b = answers_by_qid(a), answers_by_qid(b)
    only_a = sorted(set(answers_a) - set(answers_b))
    only_b = sorted(set(answers_b) - set(answers_a))
    if only_a or only_b:
        raise ReportInputError(
            f"the two results graded different items: only in {label_a}: {only_a[:10]}{' ...' if len(only_a) > 10 else ''}; "
            f"only in {label_b}: {only_b[:10]}{' ...' if len(only_b) > 10 else ''} - judge agreement needs the same answers"
        )
    differ = [qid for qid in answers_a if answers_a[qid] != answers_b[qid]]
    if differ:
        raise ReportInputError(
            f"the answers differ between {label_a} and {label_b} for {len(differ)} item(s), e.g. question_id={differ[0]} - "
            f"judge agreement needs the same answers graded twice (first differing: question_id(s) {differ[:10]})"
        )


def agreement(a: dict, b: dict, label_a: str = "A", label_b: str = "B") -> dict:
    """Per-metric agreement, kappa and disagreements between two gen results of the same answers."""
    check_same_answers(a, b, label_a, label_b)
    items_b = {item["question_id"]: item for item in b["items"]}
    per_metric = {}
    disagreements = []
    for name in GEN_METRICS:
        pairs, skipped = [], []
        for item in a["items"]:
            qid = item["question_id"]
            va, vb = item.get(name), items_b[qid].get(name)
            for label, value in ((label_a, va), (label_b, vb)):
                if value not in (0, 1, None) or isinstance(value, (bool, float)):
                    raise ReportInputError(
                        f"{label}: items[question_id={qid}].{name}: expected a verdict (1, 0 or null), got {value!r:.40}"
                    )
            if va is None or vb is None:
                skipped.append(qid)
                continue
            pairs.append((va, vb))
            if va != vb:
                disagreements.append({"question_id": qid, "category": item.get("category"), "metric": name, "a": va, "b": vb})
        n = len(pairs)
        same = sum(x == y for x, y in pairs)
        kappa = metrics.cohen_kappa([x for x, _ in pairs], [y for _, y in pairs])
        per_metric[name] = {
            "n": n,
            "agree": same,
            "agreement": metrics.percent(same / n) if n else None,
            "kappa": None if kappa is None else round(kappa, 4),
            "only_a_1": sum(x == 1 and y == 0 for x, y in pairs),
            "only_b_1": sum(x == 0 and y == 1 for x, y in pairs),
            "without_verdict": skipped,
        }
    return {
        "a": {"label": label_a, "judge": _judge(a).get("model"), "task": a["task"]},
        "b": {"label": label_b, "judge": _judge(b).get("model"), "task": b["task"]},
        "n_items": len(a["items"]),
        "metrics": per_metric,
        "disagreements": sorted(disagreements, key=lambda d: (d["question_id"], GEN_METRICS.index(d["metric"]))),
    }


def format_agreement(report: dict, max_list: int | None = 50) -> str:
    a, b = report["a"], report["b"]
    lines = [
        f"judge agreement on the same answers to {report['n_items']} item(s)",
        f"  A: {a['label']} (judge {a['judge']})",
        f"  B: {b['label']} (judge {b['judge']})",
        f"{'metric':16s} {'n':>4s} {'agree %':>8s} {'kappa':>7s} {'A=1,B=0':>8s} {'A=0,B=1':>8s} {'no verdict':>11s}",
    ]
    for name, row in report["metrics"].items():
        agreement = "–" if row["agreement"] is None else f"{row['agreement']:.2f}"
        kappa = "–" if row["kappa"] is None else f"{row['kappa']:.3f}"
        lines.append(
            f"{name:16s} {row['n']:4d} {agreement:>8s} {kappa:>7s} {row['only_a_1']:8d} {row['only_b_1']:8d} {len(row['without_verdict']):11d}"
        )
    dis = report["disagreements"]
    lines.append(f"{len(dis)} disagreement(s) (question_id, category, metric: A vs B):")
    for row in dis[: max_list if max_list is not None else len(dis)]:
        lines.append(f"  {row['question_id']}  {row['category']}  {row['metric']}: {row['a']} vs {row['b']}")
    if max_list is not None and len(dis) > max_list:
        lines.append(f"  ... {len(dis) - max_list} more (use --json for all)")
    return "\n".join(lines)
