"""SIUO ("Safe Inputs but Unsafe Output") as a task for lmms-eval and lm-eval.

The modules, one job each:

- ``data``      load and validate the release (local dir or the pinned Hugging Face revision)
- ``prompts``   the benchmark's prompt texts, verbatim, and their hashes
- ``mcqa``      the MCQA answer parser (official decisions) and scoring policy
- ``verdicts``  reading the judge's safety / effectiveness verdicts
- ``metrics``   voting, rates, confidence intervals, per-category tables (pure functions)
- ``judge``     the OpenAI-compatible judge client (concurrency, cache, retries, budget)
- ``scoring``   the one scoring code path shared by every harness and ``siuo score``
- ``schema``    the result schema and its vocabulary: task and metric names, file names, the atomic writer
- ``harness_common``  what both harness adapters share (records, one scoring session per evaluation)
- ``lmms_eval_adapter`` / ``lm_eval_adapter``  thin harness adapters; ``lmms_eval_plugin`` makes lmms-eval find the tasks
- ``results_io`` / ``export`` / ``agree``  reading (following each run's link to its SIUO file), exporting, judge agreement
- ``report`` / ``report_figures`` / ``report_render``  the report's model, its pictures (matplotlib), its Markdown/HTML
- ``cli``       the ``siuo`` command

PROTOCOL.md at the repository root documents every choice and deviation.
Importing this package does no network access and no heavy work.
"""

__version__ = "0.1.0"
