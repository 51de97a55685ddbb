"""The judge's token usage in lmms-eval's own usage accounting (lmms-eval 0.7.x).

lmms-eval 0.7 records every API call's tokens through
``lmms_eval.models.model_utils.usage_metrics.log_usage`` (its own LLM judges with ``source="judge"``)
and, after ``evaluate()`` returns, writes the summary into results.json's ``usage`` (``total``,
``by_task``, ``by_source``) and logs the run's token usage. SIUO judges during the aggregation, outside
the task context lmms-eval sets for ``process_results``, so the task's name is passed explicitly.
Each judge reply that reports usage is one record (the preflight check call is made before lmms-eval
resets its accounting; cache hits cost nothing and are not calls). lmms-eval 0.6.x has no such
module: no sink, nothing logged.
"""

from __future__ import annotations

from collections.abc import Callable

SOURCE = "judge"  # lmms-eval's own judges log under this source


def judge_usage_sink(task: str) -> Callable[[str, int, int], None] | None:
    """A ``usage_sink`` for the judge client of SIUO task ``task``, or None when this lmms-eval has no
    usage accounting."""
    try:
        from lmms_eval.models.model_utils.usage_metrics import log_usage
    except ImportError:  # lmms-eval 0.6.x
        return None

    def sink(model: str, prompt_tokens: int, completion_tokens: int) -> None:
        # completion_tokens includes any reasoning tokens: reported as output, as lmms-eval's own judges do
        log_usage(
            model_name=model, task_name=task, input_tokens=prompt_tokens, output_tokens=completion_tokens, reasoning_tokens=0, source=SOURCE
        )

    return sink
