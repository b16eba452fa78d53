"""`dcsched calibrate RECIPE`: measure quality against denoising steps and write the artifact.

Kinds: ``train_digits`` (train the reference DDPM and classifier, ship them in checkpoints/digits,
then calibrate), ``digits`` (calibrate the shipped reference model), ``sd_local`` (a Stable
Diffusion family pipeline from a local directory, scored with CLIP score and CLIP-IQA)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from dcsched.config import load_config_file
from dcsched.paths import RECIPES_DIR, shipped_file
from dcsched.errors import ConfigError
from dcsched.io import atomic_write, atomic_write_json
from dcsched.quality.curves import CURVE_FAMILIES, SCHEMA_VERSION


@dataclass
class CalibrateConfig:
    name: str = "digits_ddpm"  # artifact: <out_dir>/<name>.json (+ .png)
    kind: str = "digits"  # train_digits | digits | sd_local
    model_path: str = ""  # digits: checkpoints/digits by default; sd_local: required local pipeline folder
    steps: list[int] = field(default_factory=lambda: [1, 2, 3, 5, 10, 20, 50])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    num_images: int = 1000  # per (steps, seed): digits images, or prompts for sd_local
    metrics: list[str] = field(default_factory=lambda: ["digits_fd", "digits_is"])
    weights: list[float] = field(default_factory=lambda: [0.5, 0.5])
    family: str = "hill"  # the family exported to the simulator
    out_dir: str = "checkpoints/quality"
    device: str = "cpu"
    # each (steps, seed) point is generated again until this many seconds have passed, and time and
    # energy are averaged over the repetitions: NVML's energy counter moves in coarse ticks, so a
    # point of a few ms reads 0 J (the first point is preceded by one unmeasured warm-up run)
    min_measure_s: float = 0.0
    overwrite: bool = False  # an existing <out_dir>/<name>.json is refused unless true
    seed: int = 0
    # train_digits
    train_steps: int = 750
    classifier_epochs: int = 30
    # sd_local
    clip_model_path: str = ""
    clip_score_reference: float = 35.0  # CLIP score mapped to quality 1 (0 maps to 0)
    guidance_scale: float = 7.5
    height: int = 512
    width: int = 512
    prompts_file: str = ""  # default: the shipped PartiPrompts


ENUMS = {"kind": ("train_digits", "digits", "sd_local"), "family": tuple(CURVE_FAMILIES)}


def load_calibration_recipe(recipe: str, overrides: list[str]) -> CalibrateConfig:
    path = shipped_file(recipe, RECIPES_DIR / "calibrate")
    cfg = load_config_file(path, CalibrateConfig, overrides)
    validate(cfg, str(path))
    return cfg


def validate(cfg, source: str) -> None:
    from dcsched.registry import QUALITY_METRICS

    for key, allowed in ENUMS.items():
        if cfg[key] not in allowed:
            raise ConfigError(source, key, f"'{cfg[key]}' is not allowed", ", ".join(allowed))
    if not cfg.steps or min(cfg.steps) <= 0:
        raise ConfigError(source, "steps", f"step counts must be positive integers, got {list(cfg.steps)}")
    if not cfg.seeds:
        raise ConfigError(source, "seeds", "at least one sampling seed")
    for m in cfg.metrics:
        if m not in QUALITY_METRICS:
            raise ConfigError(source, "metrics", f"unknown metric '{m}'", ", ".join(QUALITY_METRICS.names()))
    if len(cfg.weights) != len(cfg.metrics) or min(cfg.weights) < 0 or sum(cfg.weights) <= 0:
        raise ConfigError(source, "weights", "one non-negative weight per metric, not all zero")
    if cfg.kind == "sd_local":
        if not cfg.model_path:
            raise ConfigError(source, "model_path", "sd_local needs a local Stable Diffusion pipeline folder (model_path=/path)")
        if not Path(cfg.model_path).is_dir():
            raise ConfigError(source, "model_path", f"'{cfg.model_path}' is not a folder (weights are never downloaded)")
        if not cfg.clip_model_path or not Path(cfg.clip_model_path).is_dir():
            raise ConfigError(source, "clip_model_path", "a local CLIP model folder is required for CLIP score")
    if cfg.kind == "digits" and cfg.model_path and not Path(cfg.model_path).is_dir():
        raise ConfigError(source, "model_path", f"'{cfg.model_path}' is not a folder")
    if cfg.num_images <= 1:
        raise ConfigError(source, "num_images", "need at least 2 images per (steps, seed)")


def _digits_setup(cfg):
    from dcsched.calibration.digits import DIGITS_DIR, load_digit_images, load_reference, sample_digits
    from dcsched.quality.metrics import noise_like
    from dcsched.registry import QUALITY_METRICS

    unet, reference = load_reference(Path(cfg.model_path) if cfg.model_path else DIGITS_DIR)
    xtr, _, _, _ = load_digit_images()
    real = xtr[: min(len(xtr), cfg.num_images)]
    metrics = {m: QUALITY_METRICS.get(m)(reference, noise_like(real), real) for m in cfg.metrics}

    def generate(steps, seed, device):
        unet.to(device)
        images, _ = sample_digits(unet, cfg.num_images, steps, seed)
        return images, None

    identity = {"id": "dcsched-digits-ddpm", "family": "class-conditional DDPM on sklearn digits (8x8)",
                "path": str(Path(cfg.model_path) if cfg.model_path else DIGITS_DIR)}
    return generate, metrics, identity


def train_digits(cfg, console=None) -> None:
    """Train the classifier and the DDPM on the digits and save them to checkpoints/digits/."""
    from dcsched.calibration.digits import DIGITS_DIR, load_digit_images, train_classifier, train_ddpm

    target = Path(cfg.model_path) if cfg.model_path else DIGITS_DIR
    xtr, ytr, xte, yte = load_digit_images(cfg.seed)
    clf = train_classifier(xtr, ytr, cfg.classifier_epochs, cfg.seed)
    acc = float((clf(xte).argmax(-1) == yte).float().mean())
    if console:
        console.print(f"digit classifier: held-out accuracy {acc:.3f}")
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("training the digits DDPM", total=cfg.train_steps)
        unet = train_ddpm(xtr, ytr, steps=cfg.train_steps, seed=cfg.seed, progress=lambda s, l: bar.advance(task))
    tmp = target.with_name(target.name + ".tmp")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    unet.save_pretrained(tmp / "unet")
    torch.save(clf.state_dict(), tmp / "classifier.pt")
    (tmp / "README.md").write_text(
        f"Reference digits DDPM and classifier for dcsched's quality calibration.\n"
        f"Regenerate: dcsched calibrate recipes/calibrate/train_digits.yaml\n"
        f"train_steps={cfg.train_steps} classifier_epochs={cfg.classifier_epochs} seed={cfg.seed} "
        f"classifier_heldout_accuracy={acc:.4f} date={datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # the whole folder appears at once


def run_calibration(cfg, console=None, command: str | None = None) -> tuple[Path, dict]:
    import lightning as L
    from torch.utils.data import DataLoader

    from dcsched.calibration.estimator import QualityEstimator, hardware_info
    from dcsched.quality.fitting import fit_all

    out = Path(cfg.out_dir) / f"{cfg.name}.json"
    if out.exists() and not cfg.overwrite:
        raise ConfigError("command line", "out_dir", f"{out} exists; nothing was overwritten",
                          "another out_dir or name, or overwrite=true")
    if cfg.kind == "train_digits":
        train_digits(cfg, console)
    if cfg.kind in ("train_digits", "digits"):
        generate, metrics, identity = _digits_setup(cfg)
    else:
        from dcsched.calibration.sd_local import sd_setup

        generate, metrics, identity = sd_setup(cfg)
    weights = dict(zip(cfg.metrics, cfg.weights))
    estimator = QualityEstimator(generate, metrics, weights, min_measure_s=cfg.min_measure_s)
    grid = [{"steps": s, "seed": z} for s in cfg.steps for z in cfg.seeds]
    accel = "gpu" if cfg.device.startswith("cuda") else "cpu"
    trainer = L.Trainer(accelerator=accel, devices=1, logger=False, enable_progress_bar=True,
                        enable_model_summary=False)
    records = trainer.predict(estimator, DataLoader(grid, batch_size=None, collate_fn=lambda x: x))
    steps = np.array([r["steps"] for r in records], dtype=np.float64)
    quality = np.array([r["quality"] for r in records])
    uniq = np.array(sorted(set(cfg.steps)), dtype=np.float64)
    mean = np.array([quality[steps == s].mean() for s in uniq])
    std = np.array([quality[steps == s].std() for s in uniq])
    fits = fit_all(steps, quality)
    chosen = fits[cfg.family]
    artifact = {
        "schema_version": SCHEMA_VERSION, "name": cfg.name, "model": identity, "calibrated": True,
        "note": "measured by dcsched calibrate; quality = weighted mix of normalised metrics (0 = bad reference, 1 = good reference)",
        "curve": {"family": cfg.family, "params": chosen["params"]},
        "fits": fits,
        "summary": {"steps": uniq.tolist(), "mean_quality": mean.tolist(), "std_quality": std.tolist()},
        "metrics": {"names": list(cfg.metrics), "weights": list(cfg.weights),
                    "references": {k: m.references() for k, m in metrics.items() if hasattr(m, "references")}},
        "measurements": records, "hardware": hardware_info(torch.device(cfg.device)),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command or " ".join(sys.argv), "config": OmegaConf.to_container(cfg),
    }
    out = Path(cfg.out_dir) / f"{cfg.name}.json"
    atomic_write_json(out, artifact)
    plot_calibration(artifact, out.with_suffix(".png"))
    if console is not None:
        console.print(f"quality vs steps ({cfg.name}): " + ", ".join(f"{int(s)}: {m:.3f}±{d:.3f}" for s, m, d in zip(uniq, mean, std)))
        console.print("fits: " + ", ".join(f"{k} R²={v['r2']:.3f}" for k, v in fits.items()) + f"; exported {cfg.family}")
        console.print(f"wrote {out} and {out.with_suffix('.png')}")
    return out, artifact


def plot_calibration(artifact: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dcsched.quality.curves import CURVE_FAMILIES

    fig, ax = plt.subplots(figsize=(6, 4))
    ms = artifact["measurements"]
    ax.scatter([m["steps"] for m in ms], [m["quality"] for m in ms], s=10, alpha=0.5, label="per seed")
    s = np.array(artifact["summary"]["steps"])
    mean, std = np.array(artifact["summary"]["mean_quality"]), np.array(artifact["summary"]["std_quality"])
    ax.fill_between(s, mean - std, mean + std, alpha=0.2, label="mean ± std over seeds")
    ax.plot(s, mean, "k.", ms=8)
    grid = np.linspace(s.min(), s.max(), 200)
    for fam, fit in artifact["fits"].items():
        fn = CURVE_FAMILIES[fam][0]
        bold = fam == artifact["curve"]["family"]
        ax.plot(grid, fn(grid, **fit["params"]), lw=2.2 if bold else 1, ls="-" if bold else "--",
                label=f"{fam} (R²={fit['r2']:.3f}){' exported' if bold else ''}")
    ax.set_xscale("log")
    ax.set_xlabel("denoising steps")
    ax.set_ylabel("quality (normalised, 0-1)")
    ax.set_title(f"{artifact['name']}: quality vs denoising steps")
    ax.legend(fontsize=7)
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)


def calibrate_command(args, console=None) -> int:
    cfg = load_calibration_recipe(args.recipe, args.overrides)
    run_calibration(cfg, console, command="dcsched calibrate " + " ".join([args.recipe, *args.overrides]))
    return 0
