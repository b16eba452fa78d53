"""Slot-steps per second of the raw kernels, the TorchRL env and the scalar reference, in one run.

    dcsched bench env  [--sizes 1 64 1024 8192] [--env-sizes 1 64 1024 4096] [--device cpu]

Targets (2 CPU cores): kernels >= 1,000,000 slot-steps/s at B=8192; the TorchRL env
>= 200,000 at B=4096; kernels >= 300x the scalar reference. Ratios are measured in this run.
The last rows time the env with the hybrid agent's headroom projection (env.steps_mode=headroom)
against the same env with absolute steps, at the largest env size.
"""

from __future__ import annotations

import argparse
import time

import torch

from dcsched.config import EnvConfig, load_scenario
from dcsched.data.exogenous import load_exogenous, split_days
from dcsched.envs import make_env
from dcsched.envs.actions import continuous_dim
from dcsched.sim import kernels
from dcsched.sim.params import build_params
from dcsched.sim.reference import params_to_python, reference_step

EXO = ("price_usd_per_mwh", "price_low_usd_per_mwh", "price_high_usd_per_mwh", "carbon_g_per_kwh",
       "temp_c", "pv_kw_per_kwp", "wind_kw_per_kw")


def timed(fn, min_time_s=1.0, warmup=3):
    for _ in range(warmup):
        fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time_s:
            return elapsed / n


def bench_kernels(cfg, B, device, dtype, step_fn=kernels.step):
    p = build_params(cfg, dtype=dtype, device=device)
    exo = load_exogenous(cfg, split_days(cfg, "test")[:8], dtype=dtype, device=device)
    g = torch.Generator(device="cpu").manual_seed(0)
    day = torch.randint(0, 8, (B,), generator=g).to(device)
    t = torch.randint(0, 288, (B,), generator=g).to(device)
    ex = {k: getattr(exo, k)[day, t] for k in EXO}
    arrivals = exo.arrival_rate[day, t]
    N, K = p.num_dcs, p.num_classes
    d = kernels.Decision(
        transfer=torch.softmax(torch.randn(B, N, N, K, generator=g, dtype=dtype), dim=-2).to(device),
        steps_idx=torch.randint(0, len(p.steps_grid), (B, N, K), generator=g).to(device),
        freq_idx=torch.randint(0, len(p.freq_levels), (B, N), generator=g).to(device))
    state = kernels.initial_state(p, (B,))

    def run():
        nonlocal state
        state, _ = step_fn(p, state, arrivals, d, ex)
        if device != "cpu":
            torch.cuda.synchronize()

    per_step = timed(run)
    state_bytes = sum(getattr(state, k).element_size() * getattr(state, k)[0].numel() for k in vars(state))
    return B / per_step, state_bytes


def bench_reference(cfg):
    p = build_params(cfg, dtype=torch.float64)
    P = params_to_python(p)
    exo = load_exogenous(cfg, split_days(cfg, "test")[:1], dtype=torch.float64)
    N, K = p.num_dcs, p.num_classes
    st = {k: [0.5 if k == "soc" else 0.0] * N for k in ("soc", "backlog_work_gpu_s", "backlog_energy_j", "backlog_jobs")}
    dec = {"transfer": [[[1.0 / N] * K for _ in range(N)] for _ in range(N)], "steps_idx": [[5] * K] * N,
           "freq_idx": [4] * N, "battery_frac": None}
    ex = {k: getattr(exo, k)[0, 100].tolist() for k in EXO}
    arr = exo.arrival_rate[0, 100].tolist()
    return 1.0 / timed(lambda: reference_step(P, st, arr, dec, ex))


def bench_env(cfg, B, device, steps_mode: str = "absolute"):
    env = make_env(cfg, EnvConfig(num_envs=B, device=device, steps_mode=steps_mode), report_outcome=True)
    td = env.reset()
    action = torch.zeros(B, continuous_dim(env.params), device=device)

    def run():
        nonlocal td
        td["action"] = action
        td = env.step_mdp(env.step(td))
        if bool(td["done"].any()):
            td = env.reset()

    return B / timed(run)


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="paper3")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024, 8192])
    ap.add_argument("--env-sizes", type=int, nargs="+", default=[1, 64, 1024, 4096])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile'd kernel rows")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_scenario(args.scenario)
    print(f"scenario={args.scenario} device={args.device} threads={torch.get_num_threads()} torch={torch.__version__}")
    ref = bench_reference(cfg)
    print(f"scalar reference (1 env, Python):        {ref:12,.0f} slot-steps/s")
    best = 0.0
    for B in args.sizes:
        rate, state_bytes = bench_kernels(cfg, B, args.device, torch.float32)
        best = max(best, rate)
        print(f"kernels  B={B:5d} float32:               {rate:12,.0f} slot-steps/s  ({rate / ref:8.0f}x reference)")
    if not args.no_compile:
        compiled = torch.compile(kernels.step, dynamic=False)
        for B in args.sizes[-2:]:
            rate, _ = bench_kernels(cfg, B, args.device, torch.float32, compiled)
            best = max(best, rate)
            print(f"kernels  B={B:5d} float32 torch.compile: {rate:12,.0f} slot-steps/s  ({rate / ref:8.0f}x reference)")
    print(f"memory per environment state: {state_bytes} bytes (float32; 4 tensors of N={len(cfg.dcs)}), "
          f"plus {len(cfg.dcs) * 2 * 4} bytes of current arrivals in the env")
    for B in args.env_sizes:
        rate = bench_env(cfg, B, args.device)
        print(f"TorchRL env B={B:5d} (trivial policy):   {rate:12,.0f} slot-steps/s  ({rate / ref:8.0f}x reference)")
    B = args.env_sizes[-1]
    absolute, headroom = bench_env(cfg, B, args.device), bench_env(cfg, B, args.device, "headroom")
    print(f"TorchRL env B={B:5d} steps_mode=absolute:   {absolute:12,.0f} slot-steps/s")
    print(f"TorchRL env B={B:5d} steps_mode=headroom:   {headroom:12,.0f} slot-steps/s  "
          f"(the projection costs {absolute / headroom:.2f}x per step)")
    print(f"best kernel / reference ratio: {best / ref:.0f}x")


if __name__ == "__main__":
    main()
