"""Entry point of `dcsched bench eval` (the benchmark lives in dcsched/bench/eval_workers.py)."""

from dcsched.bench.eval_workers import main

if __name__ == "__main__":
    main()
