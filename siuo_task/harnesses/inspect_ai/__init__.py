"""SIUO as inspect_ai tasks: ``inspect eval siuo_task/siuo_gen`` (and ``siuo_gen_vote3``, ``siuo_mcqa``).

- :mod:`.registry`: the module inspect's ``inspect_ai`` entry point names (the ``siuo_task/`` prefix).
- :mod:`.tasks`: the three tasks (data, the image first then the official prompt, the protocol's decoding).
- :mod:`.scorer`: the judge and MCQA scorers and the epochs reducer; :mod:`.metrics`: the headline metrics.
- :mod:`.evaluation`: one scoring per task per evaluation and the result file beside the log;
  :mod:`.judging`: SIUO's judge shared by the evaluation's samples; :mod:`.hooks`: inspect's run hooks.
- :mod:`.logs`: reads inspect logs for ``siuo report``/``verify``/``compare``/``export`` (no inspect import at load).

Importing this package imports nothing of inspect.
"""
