"""SIUO ("Safe Inputs but Unsafe Output") as a task for lmms-eval and lm-eval.

One folder per layer; imports only point down (CI checks it: ``lint-imports``):

- ``core``       the protocol: data, prompts, MCQA parsing, verdicts, voting and metrics, the result
                 schema and vocabulary, the one scoring path. Imports nothing else of the package.
- ``judge``      the OpenAI-compatible judge client (endpoint, transport, retries, images, cache).
- ``harnesses``  one folder per harness (hooks, plugin, task YAMLs) and what they share
                 (the harness call, per-item records, one scoring session per evaluation).
- ``results``    reading result files and run folders, verify, compare, agree, export, report.
- ``cli``        the ``siuo`` command.

PROTOCOL.md documents every choice and deviation. Importing this package does no network access
and no heavy work.
"""

__version__ = "0.2.0"

from siuo_task import _compat  # noqa: E402

_compat.install()
