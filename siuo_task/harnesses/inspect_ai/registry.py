"""What inspect's ``inspect_ai`` entry point loads (``siuo_task = "siuo_task.harnesses.inspect_ai.registry"``):
the SIUO tasks, registered as ``siuo_task/siuo_gen``, ``siuo_task/siuo_gen_vote3`` and ``siuo_task/siuo_mcqa``,
and the run hooks. inspect loads it when a task name starts with ``siuo_task/``, from any folder."""

from .hooks import SIUORunHooks  # noqa: F401
from .scorer import siuo_judge, siuo_mcqa_choice, siuo_vote  # noqa: F401
from .tasks import siuo_gen, siuo_gen_vote3, siuo_mcqa  # noqa: F401
