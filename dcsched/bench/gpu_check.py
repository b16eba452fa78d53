"""The GPU check: one command that tells whether dcsched works on a CUDA machine, and how fast.

    dcsched bench gpu [--out runs/gpu-check] [--train-frames 8192] [--skip calibration,...]
    make gpu-check

Sections (each timed, each recorded even when it fails, so one broken part does not hide the rest):

1. ``equality``: whole test days (288 slots, float64, deterministic arrivals, random continuous
   actions drawn on the CPU) stepped in the env on the CPU and on CUDA, once with absolute step
   levels and once through the headroom projection (``env.steps_mode``): per-slot utility, grid
   energy, SoC and served jobs agree to 1e-9.
2. ``env``: TorchRL env slot-steps/s on CUDA (B up to 65,536) and on the CPU (B up to 16,384).
3. ``training``: the quick SAC and DRESS-SAC recipes, ``--train-frames`` frames each, on the CPU
   and with ``trainer.accelerator=gpu env.device=cuda``: wall time per environment frame, GPU vs
   CPU and DRESS-SAC vs SAC; and eta = 0 DRESS-SAC against SAC on CUDA (identical actor weights).
   ``parallel``: the massively parallel recipe ``hybrid`` (PPO over 256 envs and the headroom
   projection), ``--parallel-batches`` whole-day batches on the CPU and on CUDA, and on CUDA with
   ``--parallel-wide-envs`` envs (one batch): frames/s and the GPU speed-up.
4. ``calibration``: the shipped digits DDPM calibrated on CUDA with NVML energy per denoising step
   (each point measured for at least ``--min-measure-s``), and its time per step on the CPU.

Writes ``gpu_check.json`` and ``gpu_check.md`` to ``--out`` (atomically). Exit code 0 when every
section that ran passed, 1 otherwise, 3 when no CUDA device is visible.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

SECTIONS = ("equality", "env", "training", "parallel", "calibration")
EQUALITY_KEYS = ("utility_usd", "grid_buy_kw", "soc", "served")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def check_equality(device: str, days: int = 8, seed: int = 0, steps_mode: str = "absolute") -> dict:
    """Step ``days`` test days on the CPU and on ``device`` with the same actions; max abs differences."""
    from dcsched.config import EnvConfig, load_scenario
    from dcsched.data.exogenous import split_days
    from dcsched.envs import make_env

    cfg = load_scenario("paper3")
    day_ids = split_days(cfg, "test")[:days]
    envs = {d: make_env(cfg, EnvConfig(dtype="float64", device=d, steps_mode=steps_mode), days=day_ids, sequential_days=True,
                        stochastic=False, seed=seed) for d in ("cpu", device)}
    tds = {d: env.reset() for d, env in envs.items()}
    gen = torch.Generator().manual_seed(seed)
    act_dim = envs["cpu"].action_spec.shape[-1]
    worst = {k: 0.0 for k in EQUALITY_KEYS}
    totals = {}
    for _ in range(envs["cpu"].T):
        action = torch.rand(days, act_dim, generator=gen, dtype=torch.float32) * 2 - 1
        outs = {}
        for d, env in envs.items():
            td = tds[d]
            td["action"] = action.to(d)
            stepped = env.step(td)
            outs[d] = stepped["next", "outcome"]
            tds[d] = env.step_mdp(stepped)
        for k in EQUALITY_KEYS:
            diff = (outs[device][k].cpu() - outs["cpu"][k]).abs().max().item()
            worst[k] = max(worst[k], diff)
            totals[k] = totals.get(k, 0.0) + float(outs["cpu"][k].sum())
    return {"days": days, "slots": envs["cpu"].T, "steps_mode": steps_mode, "max_abs_diff": worst, "cpu_totals": totals,
            "passed": all(v <= 1e-9 * max(1.0, abs(totals[k]) / (days * envs["cpu"].T)) for k, v in worst.items())}


def env_throughput(device: str, sizes: list[int]) -> dict:
    from dcsched.bench.env_throughput import bench_env
    from dcsched.config import load_scenario

    cfg = load_scenario("paper3")
    return {str(B): bench_env(cfg, B, device) for B in sizes}


def _train(recipe: str, device: str, frames: int, out: Path, extra: list[str] = ()) -> tuple[float, object]:
    from dcsched.config import load_recipe

    accel = "gpu" if device.startswith("cuda") else "cpu"
    cfg = load_recipe(recipe, [f"trainer.total_frames={frames}", f"env.device={device}", f"trainer.accelerator={accel}",
                               "logger.wandb_mode=disabled", "logger.csv=false", "trainer.progress=false",
                               "eval.policies=null", f"out_dir={out}", *extra])
    from dcsched.training.train import train_from_config

    module, _ = train_from_config(cfg)
    _sync()
    seconds = time.perf_counter() - module._t0
    return seconds / max(int(module.frames), 1), module


def training(device: str, frames: int, out: Path) -> dict:
    rows = {}
    for dev in ("cpu", device):
        for name, recipe in (("sac", "quick/sac"), ("dress_sac", "quick/dress_sac")):
            per_frame, module = _train(recipe, dev, frames, out / f"{name}-{dev}")
            rows[f"{name}@{dev}"] = {"us_per_frame": per_frame * 1e6, "frames": int(module.frames),
                                     "updates": int(module.updates)}
    for name in ("sac", "dress_sac"):
        rows[f"{name}_gpu_speedup"] = rows[f"{name}@cpu"]["us_per_frame"] / rows[f"{name}@{device}"]["us_per_frame"]
    for dev in ("cpu", device):
        rows[f"dress_over_sac@{dev}"] = rows[f"dress_sac@{dev}"]["us_per_frame"] / rows[f"sac@{dev}"]["us_per_frame"]
    # eta = 0: the reward agent runs but must not change one bit of the policy agent (its own RNG)
    # and SAC twice, to tell a leak of the shaper's randomness from CUDA's own run-to-run variation
    small = max(4096, frames // 2)
    _, sac = _train("quick/sac", device, small, out / "eta0-sac")
    _, again = _train("quick/sac", device, small, out / "eta0-sac-again")
    _, dress = _train("quick/dress_sac", device, small, out / "eta0-dress", ["shaper.eta=0"])
    rows["sac_repeat_equal"] = {"frames": small, "max_abs_weight_diff": _max_diff(sac, again)}
    rows["eta0_equals_sac"] = {"frames": small, "max_abs_weight_diff": _max_diff(sac, dress),
                               "passed": _max_diff(sac, dress) <= rows["sac_repeat_equal"]["max_abs_weight_diff"]}
    return rows


def parallel_training(device: str, batches: int, wide_envs: int, out: Path) -> dict:
    """recipes/hybrid.yaml (256 envs, one whole day per env in each batch) for ``batches`` batches on
    the CPU and on ``device``, then with ``wide_envs`` envs for one batch on ``device``: frames/s."""
    from dcsched.config import load_recipe

    day = int(load_recipe("hybrid").scenario.slots_per_day)  # one batch: num_envs x day frames
    runs = [("hybrid@cpu", "cpu", 256, batches), (f"hybrid@{device}", device, 256, batches),
            (f"hybrid@{device} envs={wide_envs}", device, wide_envs, 1)]
    rows = {}
    for name, dev, envs, n in runs:
        per_batch = envs * day
        per_frame, module = _train("hybrid", dev, per_batch * n, out / name.replace("@", "-").replace(" ", "_")
                                   .replace("=", ""), [f"env.num_envs={envs}", f"trainer.frames_per_batch={per_batch}"])
        rows[name] = {"us_per_frame": per_frame * 1e6, "frames_per_s": 1.0 / per_frame, "frames": int(module.frames),
                      "updates": int(module.updates), "num_envs": envs}
    cpu = rows["hybrid@cpu"]["us_per_frame"]
    rows["hybrid_gpu_speedup"] = cpu / rows[f"hybrid@{device}"]["us_per_frame"]
    rows["hybrid_wide_gpu_speedup"] = cpu / rows[f"hybrid@{device} envs={wide_envs}"]["us_per_frame"]
    return rows


def _max_diff(a, b) -> float:
    pairs = zip(a.algorithm.actor.parameters(), b.algorithm.actor.parameters())
    return max(float((p - q).detach().abs().max()) for p, q in pairs)


def calibration(device: str, min_measure_s: float, out: Path) -> dict:
    from dcsched.calibration.calibrate import load_calibration_recipe, run_calibration

    rows = {}
    for dev, measure in ((device, min_measure_s), ("cpu", 0.0)):
        cfg = load_calibration_recipe("recipes/calibrate/digits.yaml", [
            f"device={dev}", "seeds=[0]", "steps=[1,2,5,10,20,50]", f"min_measure_s={measure}",
            f"out_dir={out / ('calib-' + dev.replace(':', ''))}", f"name=digits_{dev.replace(':', '')}"])
        _, artifact = run_calibration(cfg, command="dcsched bench gpu")
        rows[dev] = [{k: m[k] for k in ("steps", "quality", "time_per_step_s", "energy_per_step_j", "repeats")}
                     for m in artifact["measurements"]]
    gpu_energy = [m["energy_per_step_j"] for m in rows[device]]
    rows["energy_nonzero_points"] = sum(1 for e in gpu_energy if e)
    rows["energy_points"] = len(gpu_energy)
    return rows


def to_markdown(report: dict) -> str:
    lines = [f"# dcsched GPU check ({report['date']})", "",
             f"- GPU: {report['hardware'].get('gpu')}; torch {report['hardware']['torch']}, "
             f"CUDA {report['hardware'].get('cuda')}, Python {report['hardware']['python']}, "
             f"{report['hardware']['cpu_threads']} CPU threads", ""]
    for name in SECTIONS:
        sec = report["sections"].get(name)
        if sec is None:
            continue
        lines.append(f"## {name}: {sec['status']} ({sec['seconds']:.0f} s)")
        if sec["status"] == "error":
            lines += ["", "```", sec["error"].strip()[-1500:], "```", ""]
            continue
        r = sec["result"]
        if name == "equality":
            lines.append("")
            for mode in r.values():
                lines.append(f"- steps_mode {mode['steps_mode']}: {mode['days']} days x {mode['slots']} slots, float64; "
                             "max |CUDA - CPU|: " + ", ".join(f"{k} {v:.1e}" for k, v in mode["max_abs_diff"].items()))
            lines.append("")
        elif name == "env":
            lines += ["", "| B | CPU slot-steps/s | CUDA slot-steps/s | CUDA / CPU |", "|---:|---:|---:|---:|"]
            for B, rate in r["cuda"].items():
                cpu = r["cpu"].get(B)
                lines.append(f"| {int(B):,} | {cpu:,.0f} | {rate:,.0f} | {rate / cpu:.1f}x |" if cpu
                             else f"| {int(B):,} | - | {rate:,.0f} | - |")
            lines.append("")
        elif name == "training":
            lines += ["", "| run | us/frame | frames | updates |", "|---|---:|---:|---:|"]
            for k, v in r.items():
                if isinstance(v, dict) and "us_per_frame" in v:
                    lines.append(f"| {k} | {v['us_per_frame']:,.0f} | {v['frames']:,} | {v['updates']:,} |")
            lines += ["", ", ".join(f"{k} {v:.2f}x" for k, v in r.items() if isinstance(v, float)),
                      f"eta = 0 DRESS-SAC vs SAC, max actor weight difference: "
                      f"{r['eta0_equals_sac']['max_abs_weight_diff']:.1e} (SAC vs SAC again: "
                      f"{r['sac_repeat_equal']['max_abs_weight_diff']:.1e})", ""]
        elif name == "parallel":
            lines += ["", "| run | envs | frames/s | us/frame | frames | updates |", "|---|---:|---:|---:|---:|---:|"]
            for k, v in r.items():
                if isinstance(v, dict):
                    lines.append(f"| {k} | {v['num_envs']:,} | {v['frames_per_s']:,.0f} | {v['us_per_frame']:,.1f} | "
                                 f"{v['frames']:,} | {v['updates']:,} |")
            lines += ["", ", ".join(f"{k} {v:.2f}x" for k, v in r.items() if isinstance(v, float)), ""]
        elif name == "calibration":
            lines += ["", "| steps | quality (GPU) | ms/step GPU | J/step GPU (NVML) | ms/step CPU |",
                      "|---:|---:|---:|---:|---:|"]
            dev = report["device"]
            for g, c in zip(r[dev], r["cpu"]):
                e = f"{g['energy_per_step_j']:.3f}" if g["energy_per_step_j"] is not None else "n/a"
                lines.append(f"| {g['steps']} | {g['quality']:.3f} | {g['time_per_step_s'] * 1e3:.2f} | {e} | "
                             f"{c['time_per_step_s'] * 1e3:.2f} |")
            lines.append(f"\nNVML energy moved on {r['energy_nonzero_points']} of {r['energy_points']} points.\n")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from dcsched.io import atomic_write_json, atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/gpu-check")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--train-frames", type=int, default=8192)
    ap.add_argument("--env-sizes", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    ap.add_argument("--cpu-env-max", type=int, default=16384, help="largest B measured on the CPU")
    ap.add_argument("--parallel-batches", type=int, default=2, help="whole-day batches of the hybrid recipe")
    ap.add_argument("--parallel-wide-envs", type=int, default=2048, help="envs of the wide CUDA hybrid run")
    ap.add_argument("--min-measure-s", type=float, default=1.0)
    ap.add_argument("--skip", default="", help=f"comma-separated sections to skip: {', '.join(SECTIONS)}")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available() and args.device.startswith("cuda"):
        print(f"dcsched bench gpu: torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 3
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = str(torch.device(args.device))
    skip = {s for s in args.skip.split(",") if s}
    hw = {"torch": torch.__version__, "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
          "cuda": torch.version.cuda}
    if device.startswith("cuda"):
        hw["gpu"] = torch.cuda.get_device_name(device)
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "device": device, "hardware": hw, "sections": {},
              "command": "dcsched bench gpu " + " ".join(argv if argv is not None else sys.argv[1:])}
    work = Path(tempfile.mkdtemp(prefix="dcsched-gpu-check-"))
    jobs = {
        "equality": lambda: {mode: check_equality(device, steps_mode=mode) for mode in ("absolute", "headroom")},
        "env": lambda: {"cuda": env_throughput(device, args.env_sizes),
                        "cpu": env_throughput("cpu", [b for b in args.env_sizes if b <= args.cpu_env_max])},
        "training": lambda: training(device, args.train_frames, work),
        "parallel": lambda: parallel_training(device, args.parallel_batches, args.parallel_wide_envs, work),
        "calibration": lambda: calibration(device, args.min_measure_s, work),
    }
    ok = True
    for name, job in jobs.items():
        if name in skip:
            continue
        t0 = time.perf_counter()
        print(f"gpu check: {name} ...", flush=True)
        try:
            result = job()
            passed = all(v.get("passed", True) for v in [result, *result.values()] if isinstance(v, dict))
            sec = {"status": "passed" if passed else "FAILED", "result": result}
        except Exception:  # recorded, and the next section still runs
            sec = {"status": "error", "error": traceback.format_exc()}
        sec["seconds"] = time.perf_counter() - t0
        ok &= sec["status"] == "passed"
        report["sections"][name] = sec
        print(f"gpu check: {name} {sec['status']} in {sec['seconds']:.0f} s", flush=True)
        atomic_write_json(out / "gpu_check.json", report)
    md = to_markdown(report)
    atomic_write_text(out / "gpu_check.md", md)
    print(md)
    print(json.dumps({k: v["status"] for k, v in report["sections"].items()}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
