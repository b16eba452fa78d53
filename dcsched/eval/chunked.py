"""Evaluate a day-separable policy on its days in chunks: each chunk's per-day rows are handed
back as soon as it finishes (so a caller can save them and an interrupted evaluation resumes with
the days still missing), and the chunks may run in several processes
(:mod:`dcsched.eval.day_pool`, which says what day-separable means).
"""
from __future__ import annotations

from collections.abc import Callable

from dcsched.eval.day_pool import in_processes, worker_scenario, day_chunks, is_day_separable


def evaluate_chunk(scenario_cfg, policy: str, dates: list[str], seed: int = 0) -> list[dict]:
    """Per-day rows (``evaluate_policies``' ``per_day``, each with its ``day``) of ``policy`` on
    ``dates``, deterministic arrivals."""
    from dcsched.eval.evaluate import evaluate_policies

    results = evaluate_policies(scenario_cfg, [policy], ",".join(dates), None, deterministic=True, seed=seed,
                                plots=False)
    return next(iter(results.values()))["per_day"]


def evaluate_day_rows(scenario_cfg, policy: str, days_spec: str = "test", max_days: int = 0, seed: int = 0,
                      workers: int = 1, chunk_days: int = 0, known: dict[str, dict] | None = None,
                      on_chunk: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """The per-day rows of a day-separable ``policy`` on the selected days, in day order, equal to
    one batched ``evaluate_policies`` call's ``per_day`` (``tests/test_chunked_eval.py``).

    ``known``: {date: row} from an interrupted evaluation; those days are not played again.
    ``on_chunk(rows)``: called in this process as each chunk finishes (in completion order).
    ``workers`` > 1 plays the chunks in that many processes (spawned, one torch thread each)."""
    from dcsched.data.exogenous import day_dates, parse_days

    if not is_day_separable(policy):
        raise ValueError(f"policy '{policy}' is not day-separable: evaluate it in one batch (evaluate_policies)")
    dates = day_dates(scenario_cfg, parse_days(scenario_cfg, days_spec)[: max_days or None])
    rows = {date: row for date, row in (known or {}).items() if date in dates}
    chunks = day_chunks([d for d in dates if d not in rows], workers, chunk_days)

    def finished(chunk_rows: list[dict]) -> None:
        rows.update({row["day"]: row for row in chunk_rows})
        if on_chunk is not None:
            on_chunk(chunk_rows)

    if workers > 1 and len(chunks) > 1:
        in_processes(_chunk_in_worker, scenario_cfg, (policy, seed), chunks, workers,
                      lambda _, chunk_rows: finished(chunk_rows))
    else:
        for chunk in chunks:
            finished(evaluate_chunk(scenario_cfg, policy, chunk, seed))
    return [rows[date] for date in dates]


def _chunk_in_worker(scenario: dict, policy: str, seed: int, dates: list[str]) -> list[dict]:
    """One chunk's per-day rows in a worker process."""
    return evaluate_chunk(worker_scenario(scenario), policy, dates, seed)


