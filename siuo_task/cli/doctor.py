"""``siuo doctor``: will SIUO run in this environment, and what to fix if not.

Each check gives a status (``ok``, ``warn``, ``fail``), what it found, and for a problem the fix.
``fail`` means a run as the README shows it would fail or give numbers that are not SIUO's
protocol; the command then exits 1. Nothing here prints a key: the judge check names the variable a
key would come from, never its value.

The checks, in the order a run meets them:

- ``harness``   versions of lmms-eval, lm-eval and what they run on (read from package metadata)
- ``discovery`` whether ``lmms-eval --tasks siuo`` finds the tasks: lmms-eval's own task index, built
  as its CLI builds it (entry-point plugins loaded first), or with ``--include_path``; whether another
  source defines a task of the same name (lmms-eval would run that one: ``SIUO_TASK_SOURCE`` chooses);
  and the listing command that shows them
- ``data``      where the items come from (``SIUO_DATA_DIR`` or the hub cache at the pinned revision)
  and whether they validate (:mod:`siuo_task.data`)
- ``judge``     the endpoint and model the judge settings select (``SIUO_JUDGE_*``, then lmms-eval's
  judge variables and its ``.env``), the variable each came from, and whether it answers (the
  preflight a generation run does before any model runs); a warning when lmms-eval's variables name
  another judge; skipped when the tasks need no judge
- ``decoding``  given ``--model``: whether that lmms-eval model class decodes as the tasks ask (the
  check the tasks themselves warn with, :func:`siuo_task.harnesses.lmms_eval.decoding.class_decoding`)
- ``batching``  given a ``--model`` SIUO has run locally: what is known about its ``--batch_size``
  (:mod:`siuo_task.harnesses.lmms_eval.batching`); a warning where batching changes answers or fails
"""

from __future__ import annotations

import importlib.metadata as md
import os
from dataclasses import asdict, dataclass

from siuo_task.core import schema
from siuo_task.harnesses.lmms_eval.plugin import ENV_TASK_SOURCE, FALLBACK, LISTING_NOTE, SHADOWING_ATTR, entry_point_support

OK, WARN, FAIL = "ok", "warn", "fail"
SUPPORTED_LMMS_EVAL = "0.6.0"
VERSIONS = ("lmms-eval", "lm-eval", "transformers", "torch", "datasets", "huggingface-hub", "filelock", "siuo-task")


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str | None = None


def versions() -> dict:
    found = {}
    for name in VERSIONS:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = None
    return found


def _release(version: str) -> tuple:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).release
    except InvalidVersion:
        return ()


def check_harness(found: dict) -> Check:
    lmms, lm = found.get("lmms-eval"), found.get("lm-eval")
    runs_on = ", ".join(f"{k} {found[k]}" for k in ("transformers", "torch", "datasets", "huggingface-hub") if found.get(k))
    if lmms is None:
        if lm is not None:
            return Check(
                "harness",
                WARN,
                f"lmms-eval is not installed; lm-eval {lm} is ({runs_on})",
                'the SIUO tasks of lm-eval need --include_path "$(siuo tasks-path --harness lm-eval)"; '
                "for lmms-eval: pip install 'lmms-eval>=0.6'",
            )
        return Check(
            "harness", FAIL, "neither lmms-eval nor lm-eval is installed", "pip install 'lmms-eval>=0.6' (or pip install siuo-task)"
        )
    detail = f"lmms-eval {lmms}" + (f", lm-eval {lm}" if lm else "") + (f" ({runs_on})" if runs_on else "")
    if _release(lmms) and _release(lmms) < _release(SUPPORTED_LMMS_EVAL):
        return Check(
            "harness",
            WARN,
            f"{detail}: older than {SUPPORTED_LMMS_EVAL}, the oldest release SIUO is tested with",
            "upgrade lmms-eval (pip install 'lmms-eval>=0.6'), or keep it and pass " + FALLBACK,
        )
    return Check("harness", OK, detail)


def _task_manager(include_path: str | None):
    import lmms_eval.models  # noqa: F401 - as the CLI does: loads the entry-point plugins first
    from lmms_eval.tasks import TaskManager

    return TaskManager("ERROR", include_path=include_path) if include_path else TaskManager("ERROR")


def _siuo_indexed(include_path: str | None) -> bool:
    return "siuo" in _task_manager(include_path).all_tasks


def _shadowing_check(shadowing: dict | None, how: str) -> Check | None:
    """The discovery verdict when another source defines a SIUO task name (``None``: no such clash)."""
    clashes = (shadowing or {}).get("clashes") or {}
    if not clashes:
        return None
    names = ", ".join(clashes)
    both = "; ".join(f"{name}: {c['host']} and siuo-task's {c['siuo-task']}" for name, c in clashes.items())
    choice = shadowing.get("choice")
    if choice == "siuo-task":
        return Check(
            "discovery",
            OK,
            f"`--tasks siuo` is found {how}; {names} also defined elsewhere ({both}): "
            f"siuo-task's run, as {ENV_TASK_SOURCE}=siuo-task chooses; {LISTING_NOTE}",
        )
    if choice == "host":
        return Check(
            "discovery",
            WARN,
            f"`--tasks {names}` runs another task of that name, not siuo-task's ({both}), "
            f"as {ENV_TASK_SOURCE}=host chooses: its numbers are not this package's SIUO protocol",
            f"unset {ENV_TASK_SOURCE} or set {ENV_TASK_SOURCE}=siuo-task to run siuo-task's",
        )
    return Check(
        "discovery",
        FAIL,
        f"another source defines task(s) named like siuo-task's, and lmms-eval runs that one: {both}",
        f"export {ENV_TASK_SOURCE}=siuo-task where lmms-eval runs to run siuo-task's SIUO tasks "
        f"(or {ENV_TASK_SOURCE}=host to keep the other one)",
    )


def check_discovery(include_path: str | None = None) -> Check:
    from siuo_task.harnesses.paths import lmms_eval_tasks_dir

    supported, reason = entry_point_support()
    if supported is None:
        return Check("discovery", FAIL, "lmms-eval is not installed", "pip install 'lmms-eval>=0.6'")
    try:
        manager = _task_manager(include_path)
        found = "siuo" in manager.all_tasks
    except Exception as exc:  # noqa: BLE001 - a broken harness is a finding, not a crash
        return Check(
            "discovery",
            FAIL,
            f"lmms-eval's task index could not be built ({type(exc).__name__}: {exc})",
            "reinstall lmms-eval; run `python -m lmms_eval --tasks list` to see its own error",
        )
    how = f"with --include_path {include_path}" if include_path else "automatically (siuo-task's lmms_eval.models entry point)"
    shadowed = _shadowing_check(getattr(manager, SHADOWING_ATTR, None), how)
    if shadowed is not None:
        return shadowed
    if found:
        return Check("discovery", OK, f"`--tasks siuo` is found {how}; {LISTING_NOTE}")
    if include_path is None:
        try:
            fallback_works = _siuo_indexed(str(lmms_eval_tasks_dir()))
        except Exception:  # noqa: BLE001
            fallback_works = False
        why = (
            reason
            if supported is False
            else "the siuo-task plugin did not register the task folder (see the error lmms-eval logs at start)"
        )
        if fallback_works:
            return Check(
                "discovery",
                FAIL,
                f"`--tasks siuo` alone is not found: {why}",
                f'add {FALLBACK} to the lmms-eval command (here: --include_path "{lmms_eval_tasks_dir()}")'
                + ("" if supported else ", or upgrade to lmms-eval >= 0.6"),
            )
    return Check(
        "discovery",
        FAIL,
        f"`--tasks siuo` is not found {how}",
        "reinstall siuo-task (pip install siuo-task, or pip install <checkout>); `siuo tasks-path` must name a folder with siuo/siuo.yaml",
    )


def check_data(data_dir: str | None = None) -> Check:
    from siuo_task.core import data

    fix_dir = f"set {data.ENV_DATA_DIR} to a folder with {data.FILES['gen']}, {data.FILES['mcqa']} and {data.IMAGES_DIR}/"
    where = data_dir or os.environ.get(data.ENV_DATA_DIR)
    origin = "argument" if data_dir else data.ENV_DATA_DIR
    if not where:
        origin = f"the Hugging Face cache ({data.HF_REPO} at revision {data.HF_REVISION[:12]})"
        try:
            from huggingface_hub import snapshot_download

            where = snapshot_download(
                repo_id=data.HF_REPO,
                repo_type="dataset",
                revision=data.HF_REVISION,
                local_files_only=True,
                allow_patterns=[data.FILES["gen"], data.FILES["mcqa"], f"{data.IMAGES_DIR}/*"],
            )
        except Exception:  # noqa: BLE001 - not cached (or no huggingface_hub)
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
            detail = f"SIUO is not in {origin}; a run downloads it first ({data.HF_REPO}, about 170 images)"
            if offline:
                return Check("data", FAIL, detail + ", but HF_HUB_OFFLINE is set", f"unset HF_HUB_OFFLINE for one run, or {fix_dir}")
            return Check("data", WARN, detail + " and needs the network then", f"run `siuo data check` once online, or {fix_dir}")
    try:
        summary = data.check_data_dir(where)
    except Exception as exc:  # noqa: BLE001 - SIUODataError names the file and item
        return Check("data", FAIL, f"the data from {origin} ({where}) does not validate: {exc}", fix_dir)
    return Check(
        "data",
        OK,
        f"from {origin}: {where} (gen {summary['items']['gen']} items, mcqa {summary['items']['mcqa']}, "
        f"{summary['images']} images, all valid)",
    )


def check_judge(tasks: str) -> Check:
    if not any(schema.is_gen_task(task) for task in schema.tasks_of(tasks.split(","))):
        return Check("judge", OK, f"not needed: --tasks {tasks} is not judged")
    from siuo_task.judge import JudgeClient, JudgeConfig, JudgeUnavailable

    try:
        config = JudgeConfig.from_env()
    except (ValueError, TypeError) as exc:
        return Check("judge", FAIL, f"the judge settings are invalid: {exc}", "fix the variable it names (docs/judge.md)")
    target = config.target  # the endpoint, resolved once: which API, where the URL came from, how the key travels
    where = f"{config.model} at {target.described}, sent {target.auth}"
    settings = f"settings: {config.settings_described}" + (f"; read over {config.dotenv_path}" if config.dotenv_path else "")
    try:
        with JudgeClient(config) as client:
            if client.proxy is not None:
                where += f", via {client.proxy.described}"
            client.preflight()
    except JudgeUnavailable as exc:
        return Check(
            "judge",
            FAIL,
            f"{where}: {exc}",
            "start the judge server, or set SIUO_JUDGE_BASE_URL / SIUO_JUDGE_API_KEY / SIUO_JUDGE_MODEL (README: The judge); "
            "`--predict_only` runs without a judge",
        )
    differs = config.differs_from_lmms_eval()
    if differs:  # the run would warn before generation: the same words here
        dotenv = f" (settings read over {config.dotenv_path})" if config.dotenv_path else ""
        return Check(
            "judge",
            WARN,
            f"{where}: it answers{dotenv}. {differs}",
            "nothing to fix if SIUO's judge is the one you mean; otherwise unset the SIUO_JUDGE_* variables it names "
            "or set lmms-eval's to the same judge",
        )
    return Check("judge", OK, f"{where}: it answers ({settings})")


def check_decoding(model: str, model_args: str | None, gen_kwargs: str | None, tasks: str, force_simple: bool = False) -> Check:
    try:
        from lmms_eval.models import get_model

        cls = get_model(model, force_simple=force_simple)
    except Exception as exc:  # noqa: BLE001
        return Check(
            "decoding",
            FAIL,
            f"lmms-eval can't load the model class {model!r} ({type(exc).__name__}: {exc})",
            "check the --model name (python -m lmms_eval --help lists them) and that its own dependencies are installed",
        )
    from siuo_task.harnesses.lmms_eval.decoding import class_decoding, generation_kwargs
    from siuo_task.harnesses.lmms_eval.hooks import _task_config

    names = schema.tasks_of(tasks.split(",")) or list(schema.GROUP_TASKS[schema.GROUP])
    problems, fixes = [], set()
    for task in names:
        found = class_decoding(model, model_args, gen_kwargs, generation_kwargs(_task_config(task)), force_simple=force_simple)
        if found is None:
            continue
        if "max_new_tokens" in found:
            problems.append(f"{task}: up to {found['max_new_tokens']} new tokens, not {found['task']['max_new_tokens']}")
            fixes.add("add max_new_tokens=1 to --model_args (the class takes the larger of its own value and the task's)")
        if "top_p" in found:
            problems.append(f"{task}: top_p={found['top_p']}, not {found['task']['top_p']}")
            fixes.add(f"add top_p={found['task']['top_p']} to --gen_kwargs")
    label = f"{cls.__module__}.{cls.__qualname__}"
    if problems:
        return Check(
            "decoding", FAIL, f"{label} does not decode as the SIUO protocol asks: {'; '.join(problems)}", "; ".join(sorted(fixes))
        )
    return Check("decoding", OK, f"{label} decodes as the tasks ask ({', '.join(names)})")


def check_batching(model: str) -> Check | None:
    """What :mod:`~siuo_task.harnesses.lmms_eval.batching` knows about ``--batch_size`` with ``model``
    (``None`` for a class it has no row for). A warning, never a failure: the doctor is not told the
    batch size."""
    from siuo_task.harnesses.lmms_eval.batching import lookup

    row = lookup(model)
    if row is None:
        return None
    if row.recommended_batch_size is not None:
        size = f"fastest measured: --batch_size {row.recommended_batch_size} ({row.measured_on})"
    else:
        size = "the fastest batch size on a GPU, and whether its answers equal batch 1 there, are not measured yet"
    status = OK if row.batches and row.same_answers_on_cpu else WARN
    return Check("batching", status, f"lmms-eval's {model} class {row.finding}; {size}", row.advice)


def diagnose(
    *,
    model: str | None = None,
    model_args: str | None = None,
    gen_kwargs: str | None = None,
    force_simple: bool = False,
    tasks: str = "siuo",
    include_path: str | None = None,
    data_dir: str | None = None,
) -> dict:
    found = versions()
    checks = [check_harness(found)]
    if found.get("lmms-eval"):
        checks.append(check_discovery(include_path))
    checks += [check_data(data_dir), check_judge(tasks)]
    if model:
        checks.append(check_decoding(model, model_args, gen_kwargs, tasks, force_simple))
        batching = check_batching(model)
        if batching is not None:
            checks.append(batching)
    return {"ok": all(c.status != FAIL for c in checks), "versions": found, "checks": [asdict(c) for c in checks]}


def format_report(report: dict) -> str:
    marks = {OK: "ok  ", WARN: "WARN", FAIL: "FAIL"}
    lines = [
        f"[{marks[c['status']]}] {c['name']}: {c['detail']}" + (f"\n       fix: {c['fix']}" if c["fix"] else "") for c in report["checks"]
    ]
    verdict = (
        "SIUO will run here."
        if report["ok"]
        else "A SIUO run would fail here, or give numbers that are not the protocol's: fix the FAIL lines."
    )
    return "\n".join(lines + [verdict])
