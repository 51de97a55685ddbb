"""inspect's run hooks for the SIUO tasks: the run's decoding at task start, and the run's end.

``inspect eval`` exits 0 whatever its tasks' statuses (they are in the logs). A SIUO task whose
result is invalid, whose judge was unusable or whose scoring failed ends with status "error" in its
log (:mod:`.evaluation`); at the end of an ``inspect eval`` (or ``inspect eval-retry``) run holding
such a task, or a SIUO task that failed for any other reason (the model's errors), this hook makes
the command fail: exit 4 for an invalid result, 3 for an unusable judge, 1 otherwise, as
``siuo score`` does, with the reasons and the logs on stderr. ``inspect eval-set`` already exits
non-zero when a task fails (and retries it), and a Python caller of ``inspect_ai.eval()`` reads the
status from the returned logs: neither is touched. Every evaluation's judge is closed here.

inspect calls every registered hook for every run: for runs without SIUO tasks these do nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from inspect_ai.hooks import Hooks, RunEnd, TaskStart, hooks

from siuo_task.core.layouts import inspect_task_name as siuo_task_name
from siuo_task.core.scoring import SIUORunAborted

from . import evaluation

CLI_COMMANDS = ("eval", "eval-retry")

try:  # builtin from Python 3.11; anyio brings the backport on 3.10
    _GROUP = BaseExceptionGroup
except NameError:  # pragma: no cover - Python 3.10
    from exceptiongroup import BaseExceptionGroup as _GROUP


def is_inspect_eval_cli() -> bool:
    """This process is ``inspect eval`` / ``inspect eval-retry`` (not eval-set, not a Python caller)."""
    argv = sys.argv
    if len(argv) < 2:
        return False
    program = Path(argv[0])
    return (program.name == "inspect" or program.parts[-2:] == ("inspect_ai", "__main__.py")) and argv[1] in CLI_COMMANDS


def _leaves(exc: BaseException) -> list:
    if isinstance(exc, _GROUP):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _exit_quietly_on(code: int) -> None:
    """The CLI's last word: the SIUO reason on stderr and ``code``, instead of a traceback of inspect's
    task groups (any other exception still reaches inspect's own handler)."""
    previous = sys.excepthook

    def handler(kind, exc, tb):
        leaves = _leaves(exc)
        if leaves and all(isinstance(leaf, SIUORunAborted) for leaf in leaves):
            print(f"\n{leaves[0]}", file=sys.stderr, flush=True)
            sys.exit(code)
        previous(kind, exc, tb)

    sys.excepthook = handler


@hooks(name="siuo_task", description="SIUO: records each SIUO task's decoding; fails `inspect eval` when a SIUO result is invalid")
class SIUORunHooks(Hooks):
    async def on_task_start(self, data: TaskStart) -> None:
        if siuo_task_name(data.spec.task):
            evaluation.note_plan(data.eval_id, data.plan.config)

    async def on_run_end(self, data: RunEnd) -> None:
        evaluations = evaluation.evaluations_of(data.run_id)
        failures = {ev.eval_id: (ev.exit_code, f"{ev.task} ({ev.model}): {ev.failure}") for ev in evaluations if ev.failure is not None}
        for ev in evaluations:
            evaluation.forget(ev)
        evaluation.clear_plans()
        for log in data.logs or []:  # a SIUO task that failed otherwise (the model's errors, ...): no number either
            task = siuo_task_name(log.eval.task)
            if task and log.status == "error" and log.eval.eval_id not in failures:
                message = (log.error.message if log.error else "no error recorded").strip().splitlines()
                failures[log.eval.eval_id] = (1, f"{task} ({log.eval.model}): the inspect task failed: {message[-1] if message else ''}")
        if not failures or data.exception is not None or data.eval_set_id is not None or not is_inspect_eval_cli():
            return
        code = max(code for code, _ in failures.values())
        _exit_quietly_on(code)
        logs = ", ".join(str(log.location) for log in data.logs or [] if log.eval.eval_id in failures)
        lines = "\n".join(f"  {line}" for _, line in failures.values())
        raise SIUORunAborted(
            f"siuo: no valid SIUO result from this run (exit status {code}):\n{lines}" + (f"\n  logs: {logs}" if logs else "")
        )
