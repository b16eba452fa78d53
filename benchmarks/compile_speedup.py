"""Entry point of `dcsched bench compile` (the benchmark lives in dcsched/bench/compile_speedup.py)."""

from dcsched.bench.compile_speedup import main

if __name__ == "__main__":
    main()
