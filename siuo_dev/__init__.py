"""Development-only helpers shared by the tests, the benchmarks and the GPU check (never in the
wheel): local data folders with placeholder images, the fake OpenAI-compatible judge server, tiny
random-weight checkpoints, harness-run checks and a bare transformers reference loop.

Import with the repository root on ``sys.path`` (pytest does that; the benchmark and GPU scripts
add it themselves).
"""
