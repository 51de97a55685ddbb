"""The settings of the GPU check's batch-size stages (``scripts/gpu_check.py --issue25``): their
defaults (a 7B-shaped model on one GPU, a 560 s budget on cuda), the small CPU ones of ``--dry-run``,
how the script's options override them, and the plan event: each stage's estimated seconds before
anything is measured. The stages themselves: :mod:`siuo_dev.gpu_issue25`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from siuo_dev import gpu_analysis
from siuo_dev.gpu_events import emit

STAGES = ("full", "invariance", "phases", "model_args", "sweep", "classes")


@dataclass
class Settings:
    device: str = "cuda"
    size: str = "7b"
    image_size: tuple = (896, 672)
    batch_sizes: list = field(default_factory=lambda: [1, 16, 64])
    full_batch: int | None = None  # default: max(batch_sizes)
    full_limit: int | None = None  # None: all 167 items
    tokens: int | None = None  # None: the tasks' own (5 / 500); set only for dry runs
    inv_limit: int = 32
    inv_tokens: int = 24
    sweep_limit: int | None = None
    phase_tokens: int = 33
    model_args_variants: list = field(
        default_factory=lambda: [
            "attn_implementation=sdpa",
            "attn_implementation=flash_attention_2",
            "attn_implementation=eager",
            "use_cache=False",
        ]
    )
    model_args_limit: int = 16
    model_args_tokens: int = 16
    class_models: list = field(default_factory=lambda: ["qwen2_vl", "llava_hf"])
    class_batch: int = 4
    class_limit: int = 8
    class_tokens: int = 8
    stages: list = field(default_factory=lambda: list(STAGES))
    budget_s: float = 0.0

    @property
    def batch(self) -> int:
        return self.full_batch or max(self.batch_sizes)


DRY_RUN = dict(
    device="cpu",
    size="tiny",
    image_size=(64, 48),
    batch_sizes=[1, 2],
    full_batch=2,
    full_limit=4,
    tokens=8,
    inv_limit=4,
    inv_tokens=8,
    sweep_limit=4,
    phase_tokens=8,
    model_args_variants=["attn_implementation=eager"],
    model_args_limit=4,
    model_args_tokens=8,
    class_models=["llava_hf"],
    class_batch=2,
    class_limit=2,
    class_tokens=8,
    budget_s=0.0,
)


OPTIONS = (
    "stages",
    "batch_sizes",
    "full_batch",
    "full_limit",
    "tokens",
    "inv_limit",
    "inv_tokens",
    "sweep_limit",
    "phase_tokens",
    "model_args_variants",
    "model_args_limit",
    "model_args_tokens",
    "class_models",
    "class_batch",
    "class_limit",
    "class_tokens",
    "budget_s",
)
_LISTS = {"stages": ",", "batch_sizes": ",", "class_models": ",", "model_args_variants": ";"}


def settings_from_args(a) -> Settings:
    """The stages' settings from ``gpu_check.py``'s options: the defaults (a 7B-shaped model on one
    GPU, a 560 s budget on cuda) or with ``--dry-run`` the small CPU ones; every option given wins."""
    device = a.device or ("cpu" if a.dry_run else "cuda")
    fields = dict(DRY_RUN) if a.dry_run else {"budget_s": 560.0 if device.startswith("cuda") else 0.0}
    for name in OPTIONS:
        value = getattr(a, name, None)
        if value is None:
            continue
        if name in _LISTS:
            value = [x.strip() for x in value.split(_LISTS[name]) if x.strip()]
            value = [int(x) for x in value] if name == "batch_sizes" else value
        fields[name] = value
    fields["device"] = device
    if a.big_size:
        fields["size"] = a.big_size
    if a.image_size:
        fields["image_size"] = tuple(int(v) for v in a.image_size.lower().split("x"))
    settings = Settings(**fields)
    unknown = set(settings.stages) - set(STAGES)
    if unknown:
        raise SystemExit(f"gpu_check: unknown --stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
    return settings


def estimate_seconds(s: Settings, rates: gpu_analysis.Rates | None = None) -> dict:
    """Planned seconds per stage for ``s`` (before anything is measured), for the plan event."""
    rates = rates or gpu_analysis.Rates()
    protocol = {"mcqa": 5, "gen": 500}
    tok = lambda t: {k: t for k in protocol} if t is not None else protocol  # noqa: E731
    full_items = s.full_limit or gpu_analysis.N_ITEMS
    out = {
        "build": 35.0 if s.size == "7b" else 5.0,
        "full": rates.run(s.batch, full_items, tok(s.tokens)),
        "invariance": rates.run(1, s.inv_limit, tok(s.inv_tokens)),
        "phases": rates.fixed_run_s + 3 * 2 * (s.phase_tokens * rates.step_s + rates.prefill_s),
        "sweep": sum(
            rates.run(b, s.sweep_limit or max(2, b), tok(s.tokens))
            for b in set(s.batch_sizes) - {s.batch}
            if not (b == 1 and {"invariance", "phases"} <= set(s.stages))
        ),
        "model_args": (1 + len(s.model_args_variants)) * rates.run(s.batch, s.model_args_limit, tok(s.model_args_tokens)),
        "classes": 2 * len(s.class_models) * rates.fixed_run_s,
    }
    return {k: round(v) for k, v in out.items() if k == "build" or k in s.stages}


def plan(s: Settings) -> dict:
    estimate = estimate_seconds(s)
    return emit(
        "plan",
        stages=[x for x in STAGES if x in s.stages],
        estimate_s=estimate,
        estimate_total_s=sum(estimate.values()),
        budget_s=s.budget_s,
        batch_size=s.batch,
        batch_sizes=s.batch_sizes,
        size=s.size,
        device=s.device,
        image_size=list(s.image_size),
    )
