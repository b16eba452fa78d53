"""Entry point of `dcsched bench curve` (the benchmark lives in dcsched/bench/learning_curve.py)."""

from dcsched.bench.learning_curve import main

if __name__ == "__main__":
    main()
