"""``siuo report``, ``siuo export`` and ``siuo agree`` (added to the ``siuo`` CLI by :func:`register`).

    siuo report RESULT_OR_RUN_DIR [...] [--out report.md|report.html|report.png] [--paper]
                [--capability TASK[,METRIC]] [--title TEXT] [--strict-verify] [--data-dir DIR]
    siuo export RUN_DIR --to official [--out DIR] [--data-dir DIR] [--model NAME] [--gen-task TASK]
    siuo agree RESULT_A RESULT_B [--json OUT] [--max-list N]

Errors are raised as ``ValueError`` subclasses; ``siuo``'s main turns them into exit status 2.
"""

from __future__ import annotations

from siuo_task.core.schema import GEN_TASKS


def cmd_report(args) -> int:
    from siuo_task.results.io import load_records
    from siuo_task.results.release import ReleaseItems
    from siuo_task.results.report.render import check_report_out, write_report

    if args.out is not None:
        check_report_out(args.out, [raw for _, raw in map(_split, args.inputs)])  # before reading anything
    records = load_records(args.inputs)
    written = write_report(
        records,
        args.out,
        paper=args.paper,
        capability=args.capability,
        title=args.title,
        strict_verify=args.strict_verify,
        release=ReleaseItems(args.data_dir),
    )
    for path in written:
        print(f"wrote {path}")
    return 0


def _split(arg: str) -> tuple:
    from siuo_task.results.io import split_label

    return split_label(arg)


def cmd_export(args) -> int:
    from siuo_task.results.export import export_official

    written = export_official(args.run_dir, args.out, data_dir=args.data_dir, model=args.model, gen_task=args.gen_task)
    for path, task, source, n in written:
        print(f"wrote {path} ({n} items from {task}, answers from {source})")
    return 0


def cmd_agree(args) -> int:
    from siuo_task.results.agree import agreement, format_agreement, load_gen_result

    if args.json:
        from siuo_task.core.schema import check_output_path

        check_output_path(args.json, [args.result_a, args.result_b], what="--json")
    report = agreement(load_gen_result(args.result_a), load_gen_result(args.result_b), args.result_a, args.result_b)
    print(format_agreement(report, max_list=args.max_list))
    if args.json:
        from siuo_task.core.schema import check_output_path, write_json_atomic

        out = write_json_atomic(check_output_path(args.json, [args.result_a, args.result_b], what="--json"), report)
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
    report.add_argument(
        "--out",
        help="report.md (+ PNG files beside it), report.html (one self-contained file) or "
        "report.png (the per-category picture); default: Markdown on stdout",
    )
    report.add_argument("--paper", action="store_true", help="add the paper's published (human-graded) rows for reference")
    report.add_argument(
        "--capability", metavar="TASK[,METRIC]", help="other task of the same runs to plot SIUO Safe against (default: the only other task)"
    )
    report.add_argument("--title", default="SIUO report")
    report.add_argument(
        "--strict-verify",
        action="store_true",
        help="refuse to report a result whose numbers or validity do not recompute from its per-item records, "
        "whose items are not SIUO's, that was graded by the dry-run judge, that is malformed or that has "
        "headline numbers only (default: report it, marked NOT VERIFIED)",
    )
    report.add_argument(
        "--data-dir",
        help="SIUO data folder to verify the results against (default: SIUO_DATA_DIR, else the "
        "pinned revision if it is in the Hugging Face cache; never downloaded)",
    )
    report.set_defaults(func=cmd_report)

    export = subparsers.add_parser("export", help="write an lmms-eval run's answers as official submission files")
    export.add_argument("run_dir", help="lmms-eval --output_path folder (or one model folder in it)")
    export.add_argument("--to", choices=["official"], required=True, help="official: siuo_gen-{model}.json and siuo_mcqa-{model}.json")
    export.add_argument("--out", help="output folder (default: RUN_DIR/official)")
    export.add_argument(
        "--data-dir",
        help="SIUO data folder for the release fields (default: SIUO_DATA_DIR, "
        "else the folder the run recorded, else the pinned Hugging Face revision)",
    )
    export.add_argument("--model", help="only this model (name or folder)")
    export.add_argument(
        "--gen-task", choices=list(GEN_TASKS), help="which generation task to export when a run has both (default: siuo_gen_vote3)"
    )
    export.set_defaults(func=cmd_export)

    agree = subparsers.add_parser("agree", help="agreement (percent, Cohen's kappa) between two judges on the same answers")
    agree.add_argument("result_a")
    agree.add_argument("result_b")
    agree.add_argument("--json", help="also write the full agreement report (every disagreement) here")
    agree.add_argument("--max-list", type=int, default=50, help="disagreements to print (default 50)")
    agree.set_defaults(func=cmd_agree)
