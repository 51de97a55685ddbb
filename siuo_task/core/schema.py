"""The SIUO vocabulary and result schema: the one owner of task, group, setting and metric names,
the result file's fields, the validity check, the atomic writer and secret-key hints.

Every other module (scoring, harness adapters, ``siuo score``, verify, compare, report, export,
doctor) imports these names; none re-declares them. Where the result file goes beside a harness
run is :mod:`siuo_task.core.layouts`.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

# ------------------------------------------------------------------------------------------- names

# The two data settings (the release's two files).
GEN_SETTING = "gen"
MCQA_SETTING = "mcqa"
SETTINGS = (GEN_SETTING, MCQA_SETTING)

MCQA_TASK = "siuo_mcqa"
GEN_TASK = "siuo_gen"
GEN_VOTE3_TASK = "siuo_gen_vote3"
GEN_TASKS = (GEN_TASK, GEN_VOTE3_TASK)
TASKS = (GEN_TASK, GEN_VOTE3_TASK, MCQA_TASK)
GROUP = "siuo"
GROUPS = (GROUP,)
GROUP_TASKS = {GROUP: (GEN_TASK, MCQA_TASK)}  # what `--tasks siuo` runs
TASK_NAMES = GROUPS + TASKS  # every name SIUO registers in a harness
ANSWERS_PER_ITEM = {GEN_TASK: 1, GEN_VOTE3_TASK: 3}  # what each generation task votes on (PROTOCOL.md)

# Metric names, as the harnesses and the result file spell them.
SAFE, EFFECTIVE, SAFE_EFFECTIVE = "safe", "effective", "safe_effective"
ACCURACY, UNPARSED = "accuracy", "unparsed"
GEN_METRICS = (SAFE, EFFECTIVE, SAFE_EFFECTIVE)
MCQA_METRICS = (ACCURACY, UNPARSED)
JUDGE_PARTS = (SAFE, EFFECTIVE)  # the two judge calls per answer; safe_effective is derived from them
METRICS = {MCQA_TASK: MCQA_METRICS, GEN_TASK: GEN_METRICS, GEN_VOTE3_TASK: GEN_METRICS}
HEADLINE_METRICS = GEN_METRICS + (ACCURACY,)  # the report's headline columns, one per rate
METRIC_LABELS = {
    SAFE: "Safe",
    EFFECTIVE: "Effective",
    SAFE_EFFECTIVE: "Safe & Effective",
    ACCURACY: "MCQA accuracy",
    UNPARSED: "MCQA unparsed",
}
SETTING_LABELS = {GEN_SETTING: "generation", MCQA_SETTING: "MCQA"}

# The SIUO protocol version: it changes whenever a published number could move (prompt texts,
# MCQA parsing, verdict reading, voting, answer normalisation, the judge request). Every result
# records it (provenance.protocol_version), `siuo verify` checks it, `siuo report` shows it beside
# the judge, `siuo --version` prints it; CHANGELOG.md lists what each version changed, and
# tests/test_golden.py pins the behaviour of each version by a fingerprint (a change without a new
# version fails there). Results written before versions existed (siuo-task 0.1) carry none.
PROTOCOL_VERSION = "1"

# The per-item record field that holds an item's score for one metric (0 or 100, the metric's own
# scale), written by the aggregation after the one scoring; lmms-eval's task config names it
# (``score_key``) and computes ``<metric>_stderr_clt`` from it. Items are clustered by their image
# (``cluster_key``) for ``_stderr_clustered``: one image per SIUO item, so it equals the CLT one.
ITEM_SCORE_KEY = "score"
ITEM_CLUSTER_KEY = "image"

# Top-level fields every result carries (README, "Result files").
FIELDS = ("task", "metrics", "ci95", "counts", "by_category", "items", "provenance")
VALID = "valid"  # bool: False when something makes the numbers unusable
INVALID_REASONS = "invalid_reasons"  # [str, ...], empty when valid


class SIUOInvalidResult(RuntimeError):
    """The result file was written but its numbers must not be used (it says ``"valid": false``).
    Also importable as ``siuo_task.scoring.SIUOInvalidResult``."""


def check_valid(result: Mapping, path=None) -> None:
    """Raise :class:`SIUOInvalidResult` when ``result`` is marked invalid (after it has been written)."""
    if result.get(VALID, True):
        return
    where = f" (written to {path})" if path else ""
    reasons = "; ".join(result.get(INVALID_REASONS) or ["no reason given"])
    raise SIUOInvalidResult(f"{result.get('task', 'SIUO')}: the result is INVALID{where}: {reasons}")


def is_gen_task(task: str | None) -> bool:
    return task in GEN_TASKS


def setting_of(task: str) -> str:
    """``"gen"`` or ``"mcqa"``: the data setting a task reads."""
    if task not in TASKS:
        raise ValueError(f"unknown SIUO task {task!r}; expected one of {', '.join(TASKS)}")
    return MCQA_SETTING if task == MCQA_TASK else GEN_SETTING


def tasks_of(names) -> list:
    """The SIUO tasks a harness ``--tasks`` list runs (groups expanded; other names left out)."""
    found = []
    for name in names:
        found.extend(GROUP_TASKS.get(name, (name,) if name in TASKS else ()))
    return list(dict.fromkeys(found))


def is_result(payload) -> bool:
    """Whether a JSON payload is a SIUO result file."""
    return (
        isinstance(payload, dict)
        and payload.get("task") in TASKS
        and isinstance(payload.get("metrics"), dict)
        and isinstance(payload.get("provenance"), dict)
    )


# ---------------------------------------------------------------------------------------- secrets

SECRET_HINTS = ("key", "token", "secret", "password")
REDACTED = "<redacted>"


def is_secret_key(name) -> bool:
    """A setting whose value must never be written out (``api_key``, ``hf_token``, ...)."""
    return any(hint in str(name).lower() for hint in SECRET_HINTS)


def redact_model_args(model_args):
    """Model arguments with secret-looking values hidden (``a=1,api_key=x`` or a dict)."""
    if isinstance(model_args, Mapping):
        return {k: (REDACTED if is_secret_key(k) else v) for k, v in model_args.items()}
    if not isinstance(model_args, str):
        return model_args
    parts = []
    for part in model_args.split(","):
        key = part.split("=", 1)[0]
        parts.append(f"{key}={REDACTED}" if is_secret_key(key) else part)
    return ",".join(parts)


# ---------------------------------------------------------------------------------------- writing


class SIUOOutputError(ValueError, OSError):
    """An output path that would lose or hide something (an input, a folder, a special file, a link)
    or that cannot be written; the message names the path. A ``ValueError`` (bad input: ``siuo``
    exits 2) and an ``OSError`` (a write that failed: the judge cache logs it and goes on)."""


def check_output_path(path, inputs=(), what: str = "--out") -> Path:
    """Refuse an output path before any work is done: an existing folder, symbolic link or special
    file (FIFO, device, socket), one of ``inputs`` (the same file, however named), or a place that
    cannot be written (no folder to write in, not writable). Returns the path."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None  # the folder walk below says why
    except OSError as exc:
        raise SIUOOutputError(f"{what} {path}: cannot be used ({exc.strerror or exc})") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise SIUOOutputError(f"{what} {path}: is a folder, not a file")
        if stat.S_ISLNK(st.st_mode):
            raise SIUOOutputError(f"{what} {path}: is a symbolic link; refusing to replace it (name the file itself)")
        if not stat.S_ISREG(st.st_mode):
            raise SIUOOutputError(f"{what} {path}: is a special file (FIFO, device or socket), not a regular file")
        for source in inputs:
            try:
                clash = os.path.samefile(path, source)
            except OSError:
                clash = False
            if clash:
                raise SIUOOutputError(f"{what} {path}: is also an input ({source}); refusing to overwrite it")
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        if folder.is_symlink():
            raise SIUOOutputError(f"{what} {path}: {folder} is a broken symbolic link")
        folder = folder.parent
    if not folder.is_dir():
        raise SIUOOutputError(f"{what} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SIUOOutputError(f"{what} {path}: {folder} is not writable")
    return path


def _refuse_non_regular(path: Path) -> None:
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a special file"
        raise SIUOOutputError(f"{path}: is {kind}, not a regular file; refusing to replace it")


def _temporary(path: Path) -> tuple:
    """A new temporary file beside ``path``, created with mode 0o666 minus the user's umask (as any
    file the user creates; ``tempfile.mkstemp`` would make it 0o600 whatever the umask)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name[:16]}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary file name")


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` so that a reader sees the old file or the new one, never part of one
    (temporary file + rename in the same folder; the folder is made when missing; the file gets the
    user's umask). Only a regular file is ever replaced: a folder, symbolic link, FIFO or device at
    ``path`` raises :class:`SIUOOutputError`. No fsync: the judge cache, the main caller, treats a file
    lost in a crash as a miss."""
    path = Path(path)
    _refuse_non_regular(path)
    try:
        fd, tmp = _temporary(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_json_atomic(path, payload) -> Path:
    """Write a JSON file atomically (see :func:`write_bytes_atomic`)."""
    return write_bytes_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8"))


def write_result(result: dict, path) -> Path:
    """Write a SIUO result file; then, if the result says it is not valid, raise
    :class:`SIUOInvalidResult` naming the file and the reasons (the file stays,
    for inspection)."""
    path = write_json_atomic(path, result)
    check_valid(result, path)
    return path
