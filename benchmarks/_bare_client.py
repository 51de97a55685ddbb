"""The judge phase's floor: replay recorded judge request bodies with a bare aiohttp client.

Not a transport of the project (the judge's calls go through the openai SDK): a measurement. It
posts every body of ``BODIES`` (a JSON list) to ``URL``/chat/completions with ``CONCURRENCY``
workers and no other work (no SDK request building or reply parsing, no cache, no retries), so the
judge phase it leaves on the fake server is what the server and the loopback network cost alone.

    python benchmarks/_bare_client.py BODIES.json URL CONCURRENCY

Prints one JSON object: ``{"calls": n, "ok": n_2xx, "wall_s": s}``; exit 1 when a call fails.
The key comes from ``SIUO_JUDGE_API_KEY`` (as the CLI's), sent as a Bearer token to ``URL`` only.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time


async def replay(bodies: list, url: str, concurrency: int) -> dict:
    import aiohttp

    headers = {"Authorization": f"Bearer {os.environ.get('SIUO_JUDGE_API_KEY', '')}"}
    todo = iter(bodies)
    ok = 0

    async def worker(session) -> None:
        nonlocal ok
        for body in todo:  # one iterator shared by the workers, as the judge client's
            async with session.post(url.rstrip("/") + "/chat/completions", json=body, headers=headers) as reply:
                await reply.read()
                ok += 200 <= reply.status < 300

    start = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return {"calls": len(bodies), "ok": ok, "wall_s": time.perf_counter() - start}


def main(argv: list) -> int:
    path, url, concurrency = argv[0], argv[1], int(argv[2])
    with open(path, encoding="utf-8") as fh:
        bodies = json.load(fh)
    result = asyncio.run(replay(bodies, url, concurrency))
    print(json.dumps(result))
    return 0 if result["ok"] == result["calls"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
