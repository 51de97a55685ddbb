"""``siuo report``, ``siuo export`` and ``siuo agree`` (added to the ``siuo`` CLI by :func:`register`).

    siuo report RESULT_OR_RUN_DIR [...] [--out report.md|report.html|report.png] [--paper]
                [--capability TASK[,METRIC]] [--title TEXT] [--strict-verify]
    siuo export RUN_DIR --to official [--out DIR] [--data-dir DIR] [--model NAME] [--gen-task TASK]
    siuo agree RESULT_A RESULT_B [--json OUT] [--max-list N]

Errors are raised as ``ValueError`` subclasses; ``siuo``'s main turns them into exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path

from siuo_task.core.schema import GEN_TASKS


def cmd_report(args) -> int:
    from siuo_task.results.report.render import write_report
    from siuo_task.results.io import load_records

    records = load_records(args.inputs)
    written = write_report(records, args.out, paper=args.paper, capability=args.capability, title=args.title,
                           strict_verify=args.strict_verify)
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_export(args) -> int:
    from siuo_task.results.export import export_official

    written = export_official(args.run_dir, args.out, data_dir=args.data_dir, model=args.model, gen_task=args.gen_task)
    for path, task, source, n in written:
        print(f"wrote {path} ({n} items from {task}, answers from {source})")
    return 0


def cmd_agree(args) -> int:
    from siuo_task.results.agree import agreement, format_agreement, load_gen_result

    report = agreement(load_gen_result(args.result_a), load_gen_result(args.result_b), args.result_a, args.result_b)
    print(format_agreement(report, max_list=args.max_list))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    """Add ``report``, ``export`` and ``agree`` to the ``siuo`` argparse sub-commands."""
    report = subparsers.add_parser(
        "report",
        help="side-by-side tables and pictures of one or more models' results",
        description="Inputs: SIUO result JSONs (siuo score, or a run's per-item files), harness output folders "
        "(--output_path), model folders or results files; LABEL=PATH renames the one model found in PATH.",
    )
    report.add_argument("inputs", nargs="+", metavar="RESULT_OR_RUN_DIR")
    report.add_argument("--out", help="report.md (+ PNG files beside it), report.html (one self-contained file) or "
                                      "report.png (the per-category picture); default: Markdown on stdout")
    report.add_argument("--paper", action="store_true", help="add the paper's published (human-graded) rows for reference")
    report.add_argument("--capability", metavar="TASK[,METRIC]",
                        help="other task of the same runs to plot SIUO Safe against (default: the only other task)")
    report.add_argument("--title", default="SIUO report")
    report.add_argument("--strict-verify", action="store_true",
                        help="refuse to report a result whose numbers do not recompute from its per-item records, whose items "
                             "are not SIUO's, that is marked invalid or that has headline numbers only (default: report it, "
                             "marked NOT VERIFIED)")
    report.set_defaults(func=cmd_report)

    export = subparsers.add_parser("export", help="write an lmms-eval run's answers as official submission files")
    export.add_argument("run_dir", help="lmms-eval --output_path folder (or one model folder in it)")
    export.add_argument("--to", choices=["official"], required=True, help="official: siuo_gen-{model}.json and siuo_mcqa-{model}.json")
    export.add_argument("--out", help="output folder (default: RUN_DIR/official)")
    export.add_argument("--data-dir", help="SIUO data folder for the release fields (default: SIUO_DATA_DIR, "
                                           "else the folder the run recorded, else the pinned Hugging Face revision)")
    export.add_argument("--model", help="only this model (name or folder)")
    export.add_argument("--gen-task", choices=list(GEN_TASKS),
                        help="which generation task to export when a run has both (default: siuo_gen_vote3)")
    export.set_defaults(func=cmd_export)

    agree = subparsers.add_parser("agree", help="agreement (percent, Cohen's kappa) between two judges on the same answers")
    agree.add_argument("result_a")
    agree.add_argument("result_b")
    agree.add_argument("--json", help="also write the full agreement report (every disagreement) here")
    agree.add_argument("--max-list", type=int, default=50, help="disagreements to print (default 50)")
    agree.set_defaults(func=cmd_agree)
