"""Other published SIUO numbers, and why this package's numbers are not comparable with them.

The one text ``siuo report`` prints beside its tables in every format (Markdown, HTML, the PNG's
footnote); docs/results.md ("Other SIUO numbers") says the same, and the README points there. What it states about
VLMEvalKit was read from its source (``vlmeval/dataset/siuo.py``, ``siuo_gen.py``, ``siuo_mcq.py``
and ``run.py`` at commit e8e78f0, 2026-08-18; the SIUO datasets came in with commit 6e7e372).
"""

from __future__ import annotations

TITLE = "Other SIUO numbers (not comparable)"
VLMEVALKIT_SOURCE = "github.com/open-compass/VLMEvalKit, vlmeval/dataset/siuo*.py at commit e8e78f0"

NOT_COMPARABLE = (
    "The paper's table (--paper): Safe, Effective and Safe & Effective were graded by humans (its MCQA "
    "is automatic); here an LLM judge grades each answer with SIUO's official judge prompts and sees "
    "the image. A judge-graded rate is not a human-graded one.",
    "VLMEvalKit's SIUO, SIUO_GEN and SIUO_MCQ numbers: its judge (gpt-4o-mini by default) gets text "
    "only, never the image; it asks its own short True/False and effectiveness prompts, not SIUO's; "
    "when the judge fails its start-up check, every answer is scored by rules instead (safe = matches "
    'a refusal regex such as "I cannot" or "sorry"; effective = 8 characters or more) with only a '
    "warning; a failed or unreadable judge reply counts as unsafe or ineffective instead of being left "
    "out; MCQ uses its own prompt and counts an answer without a letter as wrong; and its headline "
    '"SIUO" is one combined score, the mean of generation Safe & Effective and MCQ accuracy, which '
    f"this package never reports. Source: {VLMEVALKIT_SOURCE}.",
)

SHORT = (
    "Judge-graded (siuo-task, judge with the image, official SIUO prompts): not comparable with the "
    "paper's human-graded table or with VLMEvalKit's SIUO scores (text-only judge, own prompts, "
    "refusal-regex fallback, combined score); see the report's notes or the README."
)
