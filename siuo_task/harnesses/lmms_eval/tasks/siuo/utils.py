"""lmms-eval hooks for SIUO; the code lives in siuo_task.harnesses.lmms_eval.hooks (one scoring path for every harness)."""

from pathlib import Path

from siuo_task.harnesses.lmms_eval.hooks import (  # noqa: F401
    aggregate_accuracy,
    aggregate_effective,
    aggregate_safe,
    aggregate_safe_effective,
    aggregate_unparsed,
    doc_to_target,
    doc_to_visual,
    gen_doc_to_messages,
    gen_doc_to_text,
    gen_process_docs,
    gen_process_results,
    gen_vote3_process_docs,
    gen_vote3_process_results,
    mcqa_doc_to_messages,
    mcqa_doc_to_text,
    mcqa_process_docs,
    mcqa_process_results,
)

# The dataset loader's input (a one-line placeholder; process_docs puts the SIUO items in its place),
# as an absolute path: _default_template_yaml reads it with `!function utils.placeholder_data_files`.
placeholder_data_files = {"test": str(Path(__file__).resolve().with_name("placeholder.jsonl"))}
