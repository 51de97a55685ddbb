"""``siuo verify`` and ``siuo compare`` (added to the ``siuo`` CLI by :func:`register`).

    siuo verify RESULT_OR_RUN_DIR [...] [--data-dir DIR] [--json] [--max-list N]
    siuo compare RESULT_A RESULT_B [--setting gen|mcqa] [--allow-different-judges] [--allow-different-items]
                 [--allow-dry-run-judge] [--data-dir DIR] [--json]

``verify`` exits 1 when any input has a mismatch (0 when every number recomputes), 2 when an input
is malformed (a field of the wrong type, named) or cannot be read. Neither command calls a judge or
touches the network: the data is read from ``--data-dir``, else ``SIUO_DATA_DIR``, else the pinned
revision if it is already in the Hugging Face cache; never downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from siuo_task.core.layouts import LEGACY_SUBDIR
from siuo_task.core.schema import GEN_SETTING, MCQA_SETTING, MCQA_TASK, SETTINGS, TASKS


def _setting_of(payload) -> str:
    if isinstance(payload, list):
        return "gen" if payload and isinstance(payload[0], dict) and "responses" in payload[0] else "mcqa"
    return MCQA_SETTING if isinstance(payload, dict) and payload.get("task") == MCQA_TASK else GEN_SETTING


def _harness_reports(results_path: Path, items) -> list:
    """Each SIUO task of an lmms-eval / lm-eval results file: its per-item file verified, and the
    harness's headline numbers checked against it."""
    from siuo_task.results.harness_numbers import verify_harness_numbers
    from siuo_task.results.io import HarnessRun, pair_siuo_file, siuo_files_in
    from siuo_task.results.verify import Mismatch, VerifyReport, verify_result

    run = HarnessRun.read(results_path)
    legacy = siuo_files_in(results_path.parent.parent / LEGACY_SUBDIR)  # files of older versions
    reports = []
    for task in run.task_names():
        if task not in TASKS:
            continue
        path, result, note = pair_siuo_file(run, task, legacy)
        if result is None:
            report = VerifyReport(f"{results_path} ({task})", task, "headline_only")
            report.mismatches.append(Mismatch("items", None, "per-item records", f"{note}: its headline numbers can't be verified"))
            reports.append(report)
            continue
        report = verify_result(result, items.get(_setting_of(result)), source=f"{path} (paired with {results_path.name})")
        headline = verify_harness_numbers(run.results["results"][task], result, task, source=results_path.name)
        report.mismatches.extend(headline)
        if not headline:
            report.agrees.append(f"{results_path.name}: the harness's headline numbers and standard errors for {task}")
        reports.append(report)
    return reports


def _reports_for(arg: str, items) -> list:
    from siuo_task.results.io import ReportInputError, harness_result_files, is_harness_results, model_dirs, read_json, read_results_file
    from siuo_task.results.io.runs import _subfolders
    from siuo_task.results.verify import verify_result

    path = Path(arg)
    if path.is_file():
        payload = read_results_file(path)
        if isinstance(payload, dict) and is_harness_results(payload):
            return _harness_reports(path, items)
        return [verify_result(payload, items.get(_setting_of(payload)), source=str(path))]
    if not path.is_dir():
        raise ReportInputError(f"{path}: no such file or folder (or a link that loops or points nowhere)")
    if harness_result_files(path) or any(harness_result_files(c) for c in _subfolders(path)):
        reports = []
        for folder in model_dirs(path):
            for results_path in harness_result_files(folder):
                reports.extend(_harness_reports(results_path, items))
        return reports
    files = sorted(path.glob("*.json")) or sorted((path / LEGACY_SUBDIR).glob("*.json"))
    if not files:
        raise ReportInputError(f"{path}: no SIUO result files or harness results here")
    reports = []
    for file in files:
        payload = read_json(file)
        reports.append(verify_result(payload, items.get(_setting_of(payload)), source=str(file)))
    return reports


def cmd_verify(args) -> int:
    from siuo_task.results.release import ReleaseItems
    from siuo_task.results.verify import format_report

    items = ReleaseItems(args.data_dir)
    reports = []
    for arg in args.results:
        reports.extend(_reports_for(arg, items))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2, ensure_ascii=False, default=str))
    else:
        for report in reports:
            print(format_report(report, max_list=args.max_list))
        bad = sum(not r.ok for r in reports)
        print(f"{len(reports) - bad} of {len(reports)} result(s) verified" + (f"; {bad} NOT verified" if bad else ""))
    if any(r.malformed for r in reports):
        return 2
    return 0 if reports and all(r.ok for r in reports) else 1


def _compare_side(arg: str) -> list:
    """The SIUO results one `siuo compare` argument stands for: a result file, or one model's results
    from anything `siuo report` reads (an lmms-eval output or model folder, a results file)."""
    from siuo_task.results.io import ReportInputError, checked_result, load_records, looks_like_siuo_result, read_results_file
    from siuo_task.results.verify import is_official_submission

    path = Path(arg)
    if path.is_file():
        payload = read_results_file(path)
        if looks_like_siuo_result(payload):
            return [checked_result(path, payload)]
        if is_official_submission(payload):
            raise ReportInputError(
                f"{arg}: an official submission carries answers, no verdicts: score it with `siuo score` and compare the results"
            )
    records = load_records([arg])
    if len(records) != 1:
        raise ReportInputError(
            f"{arg}: {len(records)} models found ({', '.join(r.name for r in records)}); give one model's folder or result file"
        )
    return records[0].results()


def cmd_compare(args) -> int:
    from siuo_task.results.compare import compare, format_comparison, setting_of
    from siuo_task.results.io import ReportInputError
    from siuo_task.results.release import ReleaseItems

    release = ReleaseItems(args.data_dir)
    side_a, side_b = _compare_side(args.result_a), _compare_side(args.result_b)
    reports = []
    for setting in SETTINGS:
        if args.setting not in (None, setting):
            continue
        a = next((r for r in side_a if setting_of(r) == setting), None)
        b = next((r for r in side_b if setting_of(r) == setting), None)
        if a is None or b is None:
            continue
        reports.append(
            compare(
                a,
                b,
                label_a=args.result_a,
                label_b=args.result_b,
                allow_different_judges=args.allow_different_judges,
                allow_different_items=args.allow_different_items,
                allow_dry_run_judge=args.allow_dry_run_judge,
                items=release.get(setting),
            )
        )
    if not reports:
        tasks = lambda side: ", ".join(str(r.get("task")) for r in side) or "none"  # noqa: E731
        raise ReportInputError(
            f"nothing to pair{' for ' + args.setting if args.setting else ''}: {args.result_a} has {tasks(side_a)}, "
            f"{args.result_b} has {tasks(side_b)} (a generation result pairs with a generation result, MCQA with MCQA)"
        )
    if args.json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(format_comparison(report, max_list=args.max_list) for report in reports))
    return 0


def register(subparsers) -> None:
    verify = subparsers.add_parser(
        "verify",
        help="recompute every number of SIUO result files from their per-item records (no judge calls)",
        description="Inputs: SIUO result JSONs (siuo score, the per-item files beside a harness run), lmms-eval results files or output folders, "
        "official submission files (siuo export). Exit status 1 when any number does not recompute.",
    )
    verify.add_argument("results", nargs="+", metavar="RESULT_OR_RUN_DIR")
    verify.add_argument(
        "--data-dir",
        help="SIUO data folder to check ids, categories and answer key against "
        "(default: SIUO_DATA_DIR, else the pinned revision if it is in the Hugging Face cache; never downloaded)",
    )
    verify.add_argument("--json", action="store_true", help="print the reports as JSON")
    verify.add_argument("--max-list", type=int, default=50, help="mismatches to print per result (default 50)")
    verify.set_defaults(func=cmd_verify)

    compare = subparsers.add_parser(
        "compare",
        help="paired comparison of two models' results on the same items (difference, 95%% CI, exact McNemar p)",
    )
    compare.add_argument("result_a", help="a SIUO result file, or one model's lmms-eval folder / results file")
    compare.add_argument("result_b")
    compare.add_argument("--setting", choices=list(SETTINGS), help="only this setting (default: every setting both have)")
    compare.add_argument(
        "--allow-different-judges",
        action="store_true",
        help="compare even when judge, prompt hashes, MCQA policy or protocol variant differ (the output says what differs)",
    )
    compare.add_argument("--allow-different-items", action="store_true", help="compare on the items both results answered")
    compare.add_argument(
        "--allow-dry-run-judge",
        action="store_true",
        help="compare a result graded by the dry-run judge anyway (its verdicts mean nothing; the output says so)",
    )
    compare.add_argument(
        "--data-dir",
        help="SIUO data folder to check the results against (default: SIUO_DATA_DIR, else the "
        "pinned revision if it is in the Hugging Face cache; never downloaded)",
    )
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.add_argument("--max-list", type=int, default=50, help="differing items to print (default 50)")
    compare.set_defaults(func=cmd_compare)
