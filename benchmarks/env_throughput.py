"""Entry point of `dcsched bench env` (the benchmark lives in dcsched/bench/env_throughput.py)."""

from dcsched.bench.env_throughput import main

if __name__ == "__main__":
    main()
