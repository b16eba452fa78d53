"""A run's learning curve in % of the LP bound, against frames and wall time, and the time to
reach 90 / 95 / 97 % of the bound (issue #13).

    dcsched bench curve RUN_DIR --bounds bounds.json [--days test] [--max-days 7]
                        [--baseline greedy_myopic] [--baseline centre_action] [--out RUN_DIR/curve]

RUN_DIR is a ``dcsched train`` run trained with ``trainer.keep_all_checkpoints=true`` (one
checkpoint per interval, ``checkpoints/epochNNN.ckpt``). Each checkpoint's deterministic policy
plays the chosen days with expected arrivals; its share of the bound is mean utility / mean bound
over those days (as in every table). A checkpoint's wall time is the training time at its last
logged batch (``frames / fps`` of metrics.csv: collection and updates, not this evaluation), so
the time axis holds for an uninterrupted run only (a resumed one restarts its clock).

Writes curve.csv and curve.png (share vs frames and vs wall time, the bound at 100 % and each
baseline as a horizontal line) and prints the first checkpoint at or above each threshold, or
"not reached".
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

THRESHOLDS = (0.90, 0.95, 0.97)


def checkpoint_times(run_dir: Path) -> dict[int, tuple[float, float]]:
    """epoch -> (frames, training seconds) at the last logged batch of that interval."""
    from dcsched.eval.plots import read_metrics

    m = read_metrics(run_dir)
    out: dict[int, tuple[float, float]] = {}
    for epoch, frames, fps in zip(m["epoch"], m["frames"], m["fps"]):
        if frames == frames and fps == fps and fps > 0:  # rows with both logged (not NaN)
            out[int(epoch)] = (float(frames), float(frames) / float(fps))
    return out


def share_of_bound(utility_by_day, bounds: list[float]) -> float:
    return float(sum(utility_by_day) / sum(bounds))


def evaluate_checkpoints(run_dir: Path, bounds_path: Path, days_spec: str, max_days: int,
                         baselines: list[str]) -> tuple[list[dict], dict[str, float]]:
    """Rows (epoch, frames, wall_s, share) per checkpoint, and each baseline's share."""
    from dcsched.agents.checkpoint_format import load_checkpoint, typed_config
    from dcsched.eval.policies import make_policy
    from dcsched.baselines.lp_bound import load_bounds
    from dcsched.config import EnvConfig
    from dcsched.data.exogenous import day_dates, parse_days
    from dcsched.envs import make_env
    from dcsched.eval.evaluate import checkpoint_env_config
    from dcsched.eval.rollout import run_days

    ckpts = sorted(Path(run_dir, "checkpoints").glob("epoch*.ckpt"))
    if not ckpts:
        from dcsched.errors import ConfigError

        raise ConfigError(str(run_dir), "checkpoints", "no checkpoints/epochNNN.ckpt in this run folder",
                          "a run trained with trainer.keep_all_checkpoints=true")
    cfg = typed_config(load_checkpoint(ckpts[0], "cpu", "run_dir")["hyper_parameters"]["cfg"])
    days = parse_days(cfg.scenario, days_spec)[: max_days or None]
    dates = day_dates(cfg.scenario, days)
    bounds_by_date = load_bounds(bounds_path, cfg.scenario, dates)
    bounds = [bounds_by_date[d] for d in dates]

    def env_with(env_cfg):
        return make_env(cfg.scenario, env_cfg, days=days, sequential_days=True, stochastic=False)

    own_env = env_with(checkpoint_env_config(str(ckpts[0]), EnvConfig()))
    times = checkpoint_times(run_dir)
    rows = []
    for ckpt in ckpts:
        epoch = int(re.findall(r"\d+", ckpt.stem)[-1])
        utility = run_days(own_env, make_policy(str(ckpt), own_env))["utility_usd"].sum(axis=(1, 2))
        frames, wall_s = times.get(epoch, (float("nan"), float("nan")))
        rows.append({"epoch": epoch, "frames": frames, "wall_s": wall_s, "share_of_bound": share_of_bound(utility, bounds)})
    base_env = env_with(EnvConfig())
    base = {name: share_of_bound(run_days(base_env, make_policy(name, base_env))["utility_usd"].sum(axis=(1, 2)), bounds)
            for name in baselines}
    return rows, base


def first_reaching(rows: list[dict], threshold: float) -> dict | None:
    return next((r for r in rows if r["share_of_bound"] >= threshold), None)


def plot(rows: list[dict], base: dict[str, float], path: Path, title: str) -> Path:
    from dcsched.eval.plots import _save, plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, key, label in ((axes[0], "frames", "environment frames"), (axes[1], "wall_s", "training wall time (s)")):
        ax.plot([r[key] for r in rows], [100 * r["share_of_bound"] for r in rows], marker="o", ms=3, label="learned")
        ax.axhline(100, color="k", lw=1, label="LP bound")
        for i, (name, share) in enumerate(base.items()):
            ax.axhline(100 * share, color=f"C{i + 1}", ls="--", lw=1, label=name)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("% of the LP bound (deterministic days)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def main(argv: list[str] | None = None) -> None:
    from dcsched.io import atomic_write_text

    ap = argparse.ArgumentParser(prog="dcsched bench curve", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--bounds", type=Path, required=True, help="bounds.json of `dcsched solve` for these days")
    ap.add_argument("--days", default="test", help="test | train | fit | val | all | YYYY-MM-DD,... (docs/guide.md#day-splits)")
    ap.add_argument("--max-days", type=int, default=7, help="the first N days (0 = all)")
    ap.add_argument("--baseline", action="append", default=None, help="policies drawn as lines (repeat)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR/curve)")
    args = ap.parse_args(argv)
    baselines = args.baseline if args.baseline is not None else ["greedy_myopic", "centre_action"]
    rows, base = evaluate_checkpoints(args.run_dir, args.bounds, args.days, args.max_days, baselines)
    out = args.out or args.run_dir / "curve"
    out.mkdir(parents=True, exist_ok=True)
    lines = ["epoch,frames,wall_s,share_of_bound"] + [
        f"{r['epoch']},{r['frames']:.0f},{r['wall_s']:.1f},{r['share_of_bound']:.5f}" for r in rows]
    atomic_write_text(out / "curve.csv", "\n".join(lines) + "\n")
    run = args.run_dir.resolve()
    name = run.parent.name if run.name == "train" else run.name  # an experiment cell keeps its run in train/
    plot(rows, base, out / "curve.png", f"{name}: {args.days} days ({args.max_days or 'all'}), deterministic")
    print(f"{'checkpoint':>10} {'frames':>12} {'wall s':>8} {'% of bound':>10}")
    for r in rows:
        print(f"{r['epoch']:>10} {r['frames']:>12,.0f} {r['wall_s']:>8.0f} {100 * r['share_of_bound']:>9.2f} %")
    for name, share in base.items():
        print(f"{name:>32}: {100 * share:.2f} %")
    best = max(rows, key=lambda r: r["share_of_bound"])
    print(f"best checkpoint: {best['epoch']} at {100 * best['share_of_bound']:.2f} % "
          f"({best['frames']:,.0f} frames, {best['wall_s']:.0f} s)")
    for th in THRESHOLDS:
        hit = first_reaching(rows, th)
        print(f"time to {100 * th:.0f} % of the bound: " + (
            f"{hit['frames']:,.0f} frames, {hit['wall_s']:.0f} s" if hit else "not reached"))
    print(f"wrote {out / 'curve.csv'} and {out / 'curve.png'}")


if __name__ == "__main__":
    main()
