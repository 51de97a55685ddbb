"""SIUO ("Safe Inputs but Unsafe Output") as a task for lmms-eval and lm-eval.

The modules, one job each:

- ``data``      load and validate the release (local dir or the pinned Hugging Face revision)
- ``prompts``   the benchmark's prompt texts, verbatim, and their hashes
- ``mcqa``      the MCQA answer parser (official decisions) and scoring policy
- ``verdicts``  reading the judge's safety / effectiveness verdicts
- ``metrics``   voting, rates, confidence intervals, per-category tables (pure functions)
- ``judge``     the OpenAI-compatible judge client (concurrency, cache, retries, budget)
- ``scoring``   the one scoring code path shared by every harness and ``siuo score``
- ``harness_common``  what both harness adapters share (records, memoised scoring, result files)
- ``lmms_eval_adapter`` / ``lm_eval_adapter``  thin harness adapters; ``lmms_eval_plugin`` makes lmms-eval find the tasks
- ``report`` / ``results_io`` / ``export`` / ``agree``  reading, comparing and exporting results
- ``cli``       the ``siuo`` command

PROTOCOL.md at the repository root documents every choice and deviation.
Importing this package does no network access and no heavy work.
"""

__version__ = "0.1.0"
