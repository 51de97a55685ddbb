"""lmms-eval model classes that do not decode as the task asks, told from the class's own rules.

Applied once per evaluation, when the scoring session begins (before any model runs), to the
harness's arguments; ``siuo doctor`` applies it to the command the user will run.
"""

from __future__ import annotations

from collections.abc import Callable

# Some lmms-eval model classes do not decode as the task asks. The vLLM classes (0.7.3) generate the
# LARGER of the task's max_new_tokens and their own ``max_new_tokens`` model argument (default 4096;
# 1024 for the simple class), so SIUO's 5-token MCQA answers and 500-token generations would run to
# thousands of tokens - other numbers than the protocol's, and wasted GPU time; and when sampling
# (siuo_gen_vote3) the chat class adds top_p=0.95 where the task leaves top_p at 1.0 (the OpenAI
# default the official run used; it is not written into the task because OpenAI's reasoning models
# reject any top_p). Checked once per evaluation, when the scoring session begins (before any model
# runs), from the harness's arguments: warned about, and recorded in the result's provenance as
# ``harness.model_decoding``.


def argv_value(argv, flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :]
    return None


def _kv_args(value) -> dict:
    """A harness ``k=v,k=v`` argument (string, or already a dict) as lmms-eval itself parses it."""
    if isinstance(value, dict):
        return value
    from lmms_eval.utils import simple_parse_args_string

    return simple_parse_args_string(value) if value else {}


def model_decoding(argv, task_generation_kwargs: dict) -> dict | None:
    """:func:`class_decoding` for the model class and arguments named in a command line (``argv``)."""
    return class_decoding(
        argv_value(argv, "--model"),
        argv_value(argv, "--model_args"),
        argv_value(argv, "--gen_kwargs"),
        task_generation_kwargs,
        force_simple="--force_simple" in argv,
    )


def class_decoding(model: str | None, model_args, gen_kwargs, task_generation_kwargs: dict, *, force_simple: bool = False) -> dict | None:
    """How lmms-eval's model class ``model`` will really decode a task, where that differs from what
    the task (with ``gen_kwargs``) asks: ``{"model_class", "max_new_tokens"?, "top_p"?, "task": {...}}``;
    ``None`` when it does not differ, or when it can't be told.

    Applies the class's own rules (``_resolve_sampling_params`` / ``_select_max_new_tokens``, as
    lmms-eval's vLLM classes have them) to ``model_args``, so a change of those rules upstream is
    followed, not guessed.
    """
    import inspect

    if not model:
        return None
    try:
        requested = {**(task_generation_kwargs or {}), **_kv_args(gen_kwargs)}
        if not isinstance(requested.get("max_new_tokens"), int):
            return None
        from lmms_eval.models import get_model

        cls = get_model(model, force_simple=force_simple)
        if not hasattr(cls, "_select_max_new_tokens"):
            return None
        own = _kv_args(model_args).get("max_new_tokens")
        if not isinstance(own, int):
            default = inspect.signature(cls.__init__).parameters.get("max_new_tokens")
            if default is None or not isinstance(default.default, int):
                return None
            own = default.default
        probe = cls.__new__(cls)  # no __init__: no engine, only the class's own request rules
        probe.max_new_tokens = own
        if hasattr(cls, "_resolve_sampling_params"):
            params = probe._resolve_sampling_params(dict(requested))
            effective = {"max_new_tokens": params.get("max_tokens"), "top_p": params.get("top_p")}
        else:
            effective = {"max_new_tokens": probe._select_max_new_tokens(requested["max_new_tokens"])}
    except Exception:  # noqa: BLE001 - a check that can't tell must never stop a run
        return None
    found = {}
    if effective["max_new_tokens"] != requested["max_new_tokens"]:
        found["max_new_tokens"] = effective["max_new_tokens"]
    sampled = float(requested.get("temperature") or 0) > 0
    if sampled and effective.get("top_p") is not None and float(effective["top_p"]) != float(requested.get("top_p", 1.0)):
        found["top_p"] = effective["top_p"]
    if not found:
        return None
    return {
        "model_class": f"{cls.__module__}.{cls.__qualname__}",
        **found,
        "task": {"max_new_tokens": requested["max_new_tokens"], "top_p": requested.get("top_p", 1.0) if sampled else None},
    }


def generation_kwargs(config: dict | None) -> dict:
    return dict((config or {}).get("generation_kwargs") or {})


def warn_model_decoding(task: str, found: dict, warning: Callable[[str], None]) -> None:
    fixes = []
    if "max_new_tokens" in found:
        fixes.append(
            f"it will generate up to {found['max_new_tokens']} tokens per answer, not the task's "
            f"{found['task']['max_new_tokens']} (it takes the larger of the task's max_new_tokens and "
            "its own; add max_new_tokens=1 to --model_args so the task's value applies)"
        )
    if "top_p" in found:
        fixes.append(
            f"it will sample with top_p={found['top_p']}, not the task's {found['task']['top_p']} "
            f"(add top_p={found['task']['top_p']} to --gen_kwargs)"
        )
    warning(
        f"SIUO {task}: the model class {found['model_class']} does not decode as the SIUO protocol "
        f"asks: {'; '.join(fixes)}. Other decoding gives other numbers (and longer answers cost GPU "
        "time); recorded in the result's provenance as harness.model_decoding."
    )
