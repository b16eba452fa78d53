"""Entry point of `dcsched bench train` (the benchmark lives in dcsched/bench/train_throughput.py)."""

from dcsched.bench.train_throughput import main

if __name__ == "__main__":
    main()
