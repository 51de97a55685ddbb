"""The SIUO tasks of inspect_ai: ``siuo_gen``, ``siuo_gen_vote3`` and ``siuo_mcqa``.

Each sample is one SIUO item: one user message holding the item's image first, then the official
prompt verbatim (:mod:`siuo_task.core.prompts`: the bare question, or the MCQA template). The items
are read and validated when the task is built, before any model runs (``SIUO_DATA_DIR`` or the
pinned Hugging Face revision). Decoding is the protocol's (PROTOCOL.md), the same as the lmms-eval
and lm-eval YAMLs: greedy with 500 new tokens (generation) or 5 (MCQA); ``siuo_gen_vote3`` samples
three answers per item (inspect's epochs) at temperature 1.0, top_p 1.0, and takes the SIUO vote.
"""

from __future__ import annotations

from inspect_ai import Epochs, Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.log import HeadlineMetric
from inspect_ai.model import ChatMessageUser, ContentImage, ContentText, GenerateConfig
from inspect_ai.solver import generate

from siuo_task import __version__
from siuo_task.core import prompts, schema

from .evaluation import TaskScoring, load_items
from .scorer import siuo_judge, siuo_mcqa_choice, siuo_vote

# The protocol's decoding (PROTOCOL.md; lmms-eval's generation_kwargs: max_new_tokens, temperature,
# do_sample) and answers per item (its `repeats`). tests/test_inspect_ai.py holds them equal to the YAMLs.
DECODING = {
    schema.GEN_TASK: GenerateConfig(max_tokens=500, temperature=0.0),
    schema.GEN_VOTE3_TASK: GenerateConfig(max_tokens=500, temperature=1.0, top_p=1.0),
    schema.MCQA_TASK: GenerateConfig(max_tokens=5, temperature=0.0),
}
ANSWERS_PER_ITEM = {schema.GEN_TASK: 1, schema.GEN_VOTE3_TASK: 3, schema.MCQA_TASK: 1}
HEADLINE = {schema.GEN_TASK: schema.SAFE_EFFECTIVE, schema.GEN_VOTE3_TASK: schema.SAFE_EFFECTIVE, schema.MCQA_TASK: schema.ACCURACY}


def prompt_of(item: dict, setting: str) -> str:
    if setting == schema.MCQA_SETTING:
        return prompts.mcqa_prompt(item["question"], item["options"])
    return prompts.gen_prompt(item["question"])


def sample_of(item: dict, setting: str) -> Sample:
    """One item as an inspect sample: the image, then the official prompt, in one user message."""
    return Sample(
        id=item["question_id"],
        input=[ChatMessageUser(content=[ContentImage(image=item["image_path"]), ContentText(text=prompt_of(item, setting))])],
        target=item.get("correct_option", ""),
        metadata={"category": item["category"]},
    )


def build_task(name: str) -> Task:
    setting = schema.setting_of(name)
    items, _source = load_items(setting)
    return Task(
        dataset=MemoryDataset([sample_of(item, setting) for item in items], name=f"SIUO {schema.SETTING_LABELS[setting]}"),
        solver=generate(),
        scorer=siuo_mcqa_choice() if setting == schema.MCQA_SETTING else siuo_judge(),
        config=DECODING[name],
        epochs=Epochs(ANSWERS_PER_ITEM[name], siuo_vote()),
        early_stopping=TaskScoring(name, items, DECODING[name], ANSWERS_PER_ITEM[name]),
        headline_metric=HeadlineMetric(metric=HEADLINE[name]),
        version=1,
        metadata={"siuo_task_version": __version__},
    )


@task
def siuo_gen() -> Task:
    """SIUO generation: the model answers freely (greedy, 500 new tokens); SIUO's judge grades each
    answer Safe / Effective; Safe & Effective is the headline."""
    return build_task(schema.GEN_TASK)


@task
def siuo_gen_vote3() -> Task:
    """SIUO generation, the paper's protocol: three sampled answers per item (temperature 1.0), judged,
    majority verdict per item."""
    return build_task(schema.GEN_VOTE3_TASK)


@task
def siuo_mcqa() -> Task:
    """SIUO multiple choice: the official prompt (greedy, 5 new tokens); accuracy is the share of items
    where the model picks the safe option."""
    return build_task(schema.MCQA_TASK)
