"""The ``siuo`` command: check data, score existing answers, print the installed task folders.

    siuo data check [DIR]
    siuo score mcqa RESPONSES.json --out RESULT.json [--data-dir DIR] [--policy official|strict]
    siuo score gen  RESPONSES.json --out RESULT.json [--data-dir DIR] [--judge-model M] [--judge-base-url URL]
                    [--concurrency N] [--cache-dir DIR] [--max-tokens N] [--token-budget N] [--task siuo_gen|siuo_gen_vote3]
    siuo tasks-path [--harness lmms-eval|lm-eval]
    siuo doctor [--model NAME --model_args ARGS --gen_kwargs ARGS] [--tasks T] [--include_path P] [--json]
    siuo report RESULT_OR_RUN_DIR [...] [--out report.md|report.html|report.png] [--paper] [--capability TASK[,METRIC]]
                [--strict-verify] [--data-dir DIR]
    siuo export RUN_DIR --to official [--out DIR]
    siuo agree RESULT_A RESULT_B
    siuo verify RESULT_OR_RUN_DIR [...] [--data-dir DIR] [--json]
    siuo compare RESULT_A RESULT_B [--allow-different-judges] [--allow-different-items] [--allow-dry-run-judge]
                 [--data-dir DIR] [--json]

Exit status: 0 on success, 2 on bad input (data, answers, settings, a malformed file, an --out that
would overwrite an input or cannot be written), 3 when the judge is unusable, 4 when `siuo score gen`
wrote a result marked invalid; 1 when `siuo verify` finds a number that does not recompute, or
`siuo doctor` finds a problem that would make a run fail (each printed with its fix); 70 on a bug of
siuo-task itself (one line; SIUO_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from siuo_task import __version__
from siuo_task.core.layouts import LAYOUTS
from siuo_task.core.schema import GEN_SETTING, GEN_TASKS, PROTOCOL_VERSION


def _print_err(message: str) -> None:
    print(f"siuo: error: {message}", file=sys.stderr)


def _read_submission(path: str, answer_field: str) -> list:
    """The rows of an official submission file (answers may be null: the answer the model never gave)."""
    from siuo_task.results.io import read_json
    from siuo_task.results.shape import describe, submission_problems

    rows = read_json(path)
    if isinstance(rows, dict):  # tolerate {"items": [...]} or {"responses": [...]}
        rows = rows.get("items") or rows.get("responses") or rows.get("data")
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of items with question_id and {answer_field}")
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or "question_id" not in row:
            raise ValueError(f"{path}: item #{index} has no question_id")
        if answer_field not in row:
            raise ValueError(f"{path}: item question_id={row['question_id']!r:.40} has no {answer_field!r} field")
    problems = submission_problems(rows)
    if problems:
        raise ValueError(f"{path}: not an official submission: {describe(problems)}")
    seen = set()
    for row in rows:
        if row["question_id"] in seen:
            raise ValueError(f"{path}: question_id={row['question_id']} appears twice")
        seen.add(row["question_id"])
    return rows


def _check_out(args, source=None) -> None:
    """``--out`` must not be an input (the answers, the data files), a folder, a special file or an
    unwritable place: checked before the data is loaded and again, with the data files, before any judge call."""
    from siuo_task.core.data import FILES
    from siuo_task.core.schema import check_output_path

    inputs = [args.responses] + ([source.data_dir / name for name in FILES.values()] if source is not None else [])
    check_output_path(args.out, inputs)


def _write_json(path: str, payload: dict) -> None:
    """Write a result file (atomically); the caller then fails on one that says it is not valid."""
    from siuo_task.core.schema import write_json_atomic

    write_json_atomic(path, payload)


def _summary_line(result: dict) -> str:
    metrics = ", ".join(f"{k}={v}" for k, v in result["metrics"].items())
    ci = result.get("ci95", {})
    extra = ""
    if "judge_errors" in result:
        extra = f"; judge errors {result['judge_errors']}; generation failures {result['counts']['generation_failures']}"
    else:
        extra = f"; unparsed {result['counts']['unparsed']}; failed requests {result['counts']['failed']}"
    missing = result["counts"].get("missing")
    if missing:
        extra += f"; {missing} item(s) had no answer"
    return f"{result['task']}: {metrics} (n={result['counts']['n']}; 95% CI {ci}{extra})"


def cmd_data_check(args) -> int:
    from siuo_task.core.data import check_data_dir

    summary = check_data_dir(args.dir)
    src = summary["source"]
    print(f"SIUO data OK: {src['data_dir']} (from {src['origin']}{', revision ' + src['hf_revision'] if src['hf_revision'] else ''})")
    print(
        f"  items: gen {summary['items']['gen']}, mcqa {summary['items']['mcqa']}; images: {summary['images']} (all present and decodable)"
    )
    print("  categories:")
    for cat, n in summary["categories"].items():
        print(f"    {cat:32s} {n:3d}")
    print("  MCQA correct option: " + ", ".join(f"{k} {v}" for k, v in summary["mcqa_correct_option"].items()))
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def cmd_score_mcqa(args) -> int:
    from siuo_task.core.data import load_items
    from siuo_task.core.scoring import SIUOScoringError, score_mcqa

    _check_out(args)
    rows = _read_submission(args.responses, "response_mcqa")
    items, source = load_items("mcqa", args.data_dir, check_images=False)
    _check_out(args, source)
    responses = {row["question_id"]: row["response_mcqa"] for row in rows}
    try:
        result = score_mcqa(
            responses, items, policy=args.policy, source=source, harness={"name": "siuo score", "input": os.path.abspath(args.responses)}
        )
    except SIUOScoringError as exc:
        raise SIUOScoringError(f"{args.responses}: {exc}") from None
    _write_json(args.out, result)
    print(_summary_line(result))
    print(f"wrote {args.out}")
    return 0


def cmd_score_gen(args) -> int:
    from siuo_task.core.data import load_items
    from siuo_task.core.scoring import SIUOScoringError, gen_task_for, gen_variant, score_gen
    from siuo_task.judge import JudgeClient, JudgeConfig

    _check_out(args)
    config = JudgeConfig.from_env(
        model=args.judge_model,
        base_url=args.judge_base_url,
        concurrency=args.concurrency,
        cache_dir=args.cache_dir,
        max_tokens=args.max_tokens,
        token_budget=args.token_budget,
        max_error_rate=args.max_error_rate,
    )
    try:
        with JudgeClient(config) as client:  # made first: with no cache yet, it starts importing the SDK at once
            rows = _read_submission(args.responses, "responses")
            answers = {}
            for row in rows:
                responses = row["responses"]
                if isinstance(responses, str):
                    responses = [responses]
                if not isinstance(responses, list) or not responses:
                    raise ValueError(
                        f"{args.responses}: item question_id={row['question_id']}: 'responses' must be a non-empty list of answers"
                    )
                answers[row["question_id"]] = responses
            try:
                task = gen_task_for(answers, args.task)  # the answers per item decide the task; a --task must agree
            except SIUOScoringError as exc:
                raise SIUOScoringError(f"{args.responses}: {exc}") from None
            items, source = load_items(GEN_SETTING, args.data_dir)
            _check_out(args, source)  # before any judge call
            client.preflight_first = True  # checked before the first uncached call; a warm cache needs no judge
            result = score_gen(
                answers,
                items,
                client,
                source=source,
                harness={"name": "siuo score", "input": os.path.abspath(args.responses)},
                variant=gen_variant(task, answers),
                progress=not args.quiet,
                task=task,
            )
    except SIUOScoringError as exc:  # an unknown question_id: named before any judge call
        if str(exc).startswith(f"{args.responses}: "):
            raise
        raise SIUOScoringError(f"{args.responses}: {exc}") from None
    _write_json(args.out, result)
    print(_summary_line(result))
    usage = result["provenance"]["judge"]["usage"]
    print(
        f"judge {config.model} at {config.endpoint_host}: {usage['calls']} calls, {usage['cache_hits']} cached, "
        f"{usage['failures']} failed, tokens {usage['prompt_tokens']}+{usage['completion_tokens']}"
        + (" - TOKEN BUDGET REACHED, some answers were not judged" if usage["budget_exhausted"] else "")
    )
    print(f"wrote {args.out}")
    from siuo_task.core.scoring import check_valid

    check_valid(result, args.out)  # an invalid result is written (for inspection), then the command fails
    return 0


def cmd_tasks_path(args) -> int:
    from siuo_task.harnesses.paths import lm_eval_tasks_dir, lmms_eval_tasks_dir

    if args.harness == "lm-eval":
        print(lm_eval_tasks_dir())
        return 0
    if args.harness == "inspect-ai":  # no folder to pass: the entry point registers the tasks
        _print_err(
            "inspect-ai finds the SIUO tasks through its entry point, from any folder: "
            "inspect eval siuo_task/siuo_gen (or siuo_gen_vote3, siuo_mcqa); install with pip install 'siuo-task[inspect]'"
        )
        return 2
    from siuo_task.harnesses.lmms_eval.plugin import entry_point_support

    print(lmms_eval_tasks_dir())
    supported, reason = entry_point_support()
    if supported is False:  # stderr: stdout stays the bare path for --include_path "$(siuo tasks-path)"
        print(f"siuo: note: {reason}; pass this folder with --include_path (see `siuo doctor`)", file=sys.stderr)
    return 0


def cmd_doctor(args) -> int:
    from siuo_task.cli.doctor import diagnose, format_report

    report = diagnose(
        model=args.model,
        model_args=args.model_args,
        gen_kwargs=args.gen_kwargs,
        force_simple=args.force_simple,
        tasks=args.tasks,
        include_path=args.include_path,
        data_dir=args.data_dir,
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siuo", description="SIUO benchmark tools (siuo-task).")
    parser.add_argument("--version", action="version", version=f"siuo-task {__version__} (SIUO protocol {PROTOCOL_VERSION})")
    sub = parser.add_subparsers(dest="command", required=True)

    data_p = sub.add_parser("data", help="data utilities")
    data_sub = data_p.add_subparsers(dest="data_command", required=True)
    check = data_sub.add_parser("check", help="validate a SIUO data directory and print a summary")
    check.add_argument("dir", nargs="?", help="data directory (default: SIUO_DATA_DIR, else the pinned Hugging Face revision)")
    check.add_argument("--json", action="store_true", help="also print the summary as JSON")
    check.set_defaults(func=cmd_data_check)

    score = sub.add_parser("score", help="score existing answers (official submission format) without a harness")
    score_sub = score.add_subparsers(dest="setting", required=True)
    mcqa = score_sub.add_parser("mcqa", help="score MCQA answers (items with question_id and response_mcqa)")
    mcqa.add_argument("responses")
    mcqa.add_argument("--out", required=True)
    mcqa.add_argument("--data-dir")
    mcqa.add_argument("--policy", choices=["official", "strict"], default="official", help="how to score answers with no option letter")
    mcqa.set_defaults(func=cmd_score_mcqa)

    gen = score_sub.add_parser("gen", help="judge generation answers (items with question_id and responses)")
    gen.add_argument("responses")
    gen.add_argument("--out", required=True)
    gen.add_argument("--data-dir")
    gen.add_argument("--judge-model", help="default: SIUO_JUDGE_MODEL or gpt-4o-mini-2024-07-18")
    gen.add_argument("--judge-base-url", help="OpenAI-compatible base URL (default: SIUO_JUDGE_BASE_URL or OpenAI)")
    gen.add_argument("--concurrency", type=int, help="judge calls in flight (default: SIUO_JUDGE_CONCURRENCY or 16)")
    gen.add_argument("--cache-dir", help="judge cache folder (default: SIUO_JUDGE_CACHE or ~/.cache/siuo_task/judge; 'off' disables)")
    gen.add_argument("--max-tokens", type=int, help="judge max_tokens (default 200)")
    gen.add_argument("--token-budget", type=int, help="stop judging cleanly after this many tokens")
    gen.add_argument(
        "--max-error-rate",
        type=float,
        help="share of judge calls that may fail before the result is invalid (default: SIUO_JUDGE_MAX_ERROR_RATE or 0.05)",
    )
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.add_argument(
        "--task",
        choices=list(GEN_TASKS),
        help="the task the answers come from, recorded in the result (default: the one the answers per item give: "
        "1 per item siuo_gen, 3 per item siuo_gen_vote3); the answers must agree with it",
    )
    gen.set_defaults(func=cmd_score_gen)

    tasks_path = sub.add_parser("tasks-path", help="print the installed task folder for --include_path")
    tasks_path.add_argument("--harness", choices=list(LAYOUTS), default="lmms-eval")
    tasks_path.set_defaults(func=cmd_tasks_path)

    doctor = sub.add_parser("doctor", help="check that SIUO will run in this environment, and say what to fix")
    doctor.add_argument("--model", help="the lmms-eval model class you will run (checks its decoding)")
    doctor.add_argument("--model_args", "--model-args", dest="model_args", help="as you pass them to lmms-eval")
    doctor.add_argument("--gen_kwargs", "--gen-kwargs", dest="gen_kwargs", help="as you pass them to lmms-eval")
    doctor.add_argument("--force_simple", action="store_true", help="as lmms-eval's --force_simple")
    doctor.add_argument("--tasks", default="siuo", help="the SIUO tasks you will run (default: siuo)")
    doctor.add_argument("--include_path", "--include-path", dest="include_path", help="as you pass it to lmms-eval, if you do")
    doctor.add_argument("--data-dir", help="data folder (default: SIUO_DATA_DIR, else the pinned Hugging Face revision)")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    doctor.set_defaults(func=cmd_doctor)

    from siuo_task.cli.report import register as register_report_commands

    register_report_commands(sub)
    from siuo_task.cli.verify import register as register_verify_commands

    register_verify_commands(sub)
    return parser


EXIT_INTERNAL = 70  # a bug of siuo-task (EX_SOFTWARE): said in one line, the traceback only with SIUO_DEBUG=1
ENV_DEBUG = "SIUO_DEBUG"


def main(argv=None) -> int:
    """The ``siuo`` command. ``argv`` None: this process is the command (the console script,
    ``python -m siuo_task.cli``)."""
    try:
        return _main(argv)
    finally:
        if argv is None:
            # The process ends now: take every object (the SDK's thousands of classes) out of the
            # collector, so the interpreter does not walk them all on the way out (~0.1-0.2 s).
            import gc

            gc.freeze()


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from siuo_task.core.data import SIUODataError
    from siuo_task.core.scoring import SIUOInvalidResult, SIUOScoringError

    try:
        return args.func(args)
    except (SIUODataError, SIUOScoringError, ValueError) as exc:
        _print_err(str(exc))
        return 2
    except SIUOInvalidResult as exc:  # exit 4: the result file exists and says "valid": false
        _print_err(str(exc))
        return 4
    except OSError as exc:  # a file or folder that cannot be read or written: named, never a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        _print_err(f"{where}{exc.strerror or exc}")
        return 2
    except (RecursionError, MemoryError) as exc:
        _print_err(f"an input is nested too deeply or too large to read ({type(exc).__name__})")
        return 2
    except Exception as exc:
        from siuo_task.judge import JudgeUnavailable

        if isinstance(exc, JudgeUnavailable):
            _print_err(str(exc))
            return 3
        if os.environ.get(ENV_DEBUG):
            raise
        _print_err(
            f"internal error in `siuo {args.command}` ({type(exc).__name__}: {exc}); this is a bug of siuo-task: "
            f"please report it with the command line (run with {ENV_DEBUG}=1 for the traceback)"
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
