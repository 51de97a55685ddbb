"""SIUO's judge for one inspect evaluation: the package's :class:`~siuo_task.judge.JudgeClient`
(cache, retries, deadlines, error budget, key scoping, request shapes) behind two small layers.

- A batcher: inspect scores samples concurrently, each scorer asking for its own two (or six) judge
  calls. One scorer at a time drains every request waiting and sends them as one
  ``JudgeClient.run`` in a worker thread, so the client's own concurrency bound, its de-duplication
  and its fatal-error stop hold for the whole evaluation, as when a harness judges all answers at
  once; the next batch is whatever arrived meanwhile.
- A memo of every reply, keyed by what decides it (prompt and image; the judge's settings are
  fixed for the evaluation): the task-level scoring (:func:`siuo_task.core.scoring.score_gen`)
  replays the replies the scorers got, so the result file's numbers come from the very verdicts
  the log shows, and no call is made twice. A failed call is remembered as failed, not retried
  behind the log's back.

It answers ``run``/``provenance``/``config``/``stats`` as a JudgeClient does, so the scoring core
takes it as its judge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace


class BatchJudge:
    def __init__(self, client):
        self.client = client
        self._memo: dict = {}
        self._queue: list = []  # requests waiting for the next batch
        self._pending: set = set()  # their keys, and those of the batch in flight: each sent once
        self._draining = False
        self._drained = None  # an anyio.Event set after each batch (made on the event loop)
        self.fatal: BaseException | None = None

    # ------------------------------------------------------------------- what JudgeClient answers
    @property
    def config(self):
        return self.client.config

    @property
    def stats(self):
        return self.client.stats

    def provenance(self) -> dict:
        return self.client.provenance()

    @property
    def max_error_rate(self) -> float:
        return self.client.max_error_rate

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def _key(request) -> tuple:
        return (request.prompt, str(request.image_path))

    def run(self, requests: Iterable, progress: bool = False, desc: str = "SIUO judge") -> dict:
        """Every request's reply, from the memo; a request no scorer asked for is judged now (blocking)."""
        requests = list(requests)
        missing = {self._key(r): r for r in requests if self._key(r) not in self._memo}
        if missing:
            self._send(list(missing.values()))
        return {r.key: replace(self._memo[self._key(r)], key=r.key) for r in requests}

    def _send(self, requests: list) -> None:
        from siuo_task.judge import JudgeRequest

        unique = {}
        for r in requests:
            unique.setdefault(self._key(r), r)
        batch = [JudgeRequest(str(i), r.prompt, r.image_path) for i, r in enumerate(unique.values())]
        try:
            replies = self.client.run(batch, progress=False)
        except BaseException as exc:
            self.fatal = self.fatal or exc
            raise
        for i, key in enumerate(unique):
            self._memo[key] = replies[str(i)]

    # --------------------------------------------------------------------------- inspect's scorers
    async def judge(self, requests: list) -> dict:
        """The replies to one scorer's requests, batched with whatever other scorers are waiting; a
        request already queued or in flight (an identical answer of another sample or epoch) is not
        sent again."""
        import anyio

        if self._drained is None:
            self._drained = anyio.Event()
        wanted = {self._key(r): r for r in requests}
        while True:
            if self.fatal is not None:  # the judge stopped: no scorer waits for it
                raise self.fatal
            missing = [(k, r) for k, r in wanted.items() if k not in self._memo]
            if not missing:
                break
            for key, request in missing:
                if key not in self._pending:
                    self._pending.add(key)
                    self._queue.append(request)
            if self._draining:
                await self._drained.wait()
            else:
                await self._drain()
        return {r.key: replace(self._memo[self._key(r)], key=r.key) for r in requests}

    async def _drain(self) -> None:
        import anyio

        self._draining = True
        batch, self._queue = self._queue, []
        try:
            await anyio.to_thread.run_sync(self._send, batch)
        except anyio.get_cancelled_exc_class():
            raise  # this scorer's sample was cancelled (the thread ran to its end first)
        except BaseException as exc:  # a fatal judge error (or a bug): every waiting scorer gets it
            self.fatal = self.fatal or exc
        finally:
            self._pending.difference_update(self._key(r) for r in batch)
            self._draining = False
            drained, self._drained = self._drained, anyio.Event()
            drained.set()
