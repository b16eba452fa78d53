"""Real text-to-image path: a Stable Diffusion family pipeline loaded from a local folder (never
from the hub), prompts from PartiPrompts, scored with CLIP score and CLIP-IQA computed from a local CLIP
folder (torchmetrics' versions do not load local folders or run with transformers 5, so the two
formulas are implemented here: CLIP score = 100 max(cos(image, prompt), 0); CLIP-IQA = softmax
of 100 cos(image, ["Good photo.", "Bad photo."]), first entry). Quality = the weighted mix of CLIP score / ``clip_score_reference`` and
CLIP-IQA (both in [0, 1] after normalisation), as the paper mixes CLIP score and a no-reference
metric (BRISQUE there; CLIP-IQA here because it runs offline from the same local CLIP weights)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from dcsched.data.regions import RAW_DIR
from dcsched.errors import ConfigError
from dcsched.quality.metrics import MetricValue, normalise
from dcsched.registry import QUALITY_METRICS

PARTI_PROMPTS = RAW_DIR / "prompts" / "PartiPrompts.tsv"


def load_prompts(n: int, seed: int, path: Path | None = None) -> list[str]:
    """``n`` PartiPrompts (or prompts of a TSV with a 'Prompt' column), a seeded sample."""
    path = Path(path) if path else PARTI_PROMPTS
    if not path.exists():
        raise ConfigError(str(path), "prompts_file", "file not found")
    with open(path, newline="") as fh:
        rows = [r["Prompt"] for r in csv.DictReader(fh, delimiter="\t") if r.get("Prompt")]
    if not rows:
        raise ConfigError(str(path), "prompts_file", "no prompts found (expected a TSV with a 'Prompt' column)")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(rows), generator=g)[:n].tolist()
    return [rows[i] for i in idx]


class LocalCLIP:
    """A CLIP model and processor from a local folder (never the hub), with unit-norm embeddings.
    Works with transformers 5 (whose get_*_features return output objects)."""

    def __init__(self, path: str):
        from transformers import CLIPModel, CLIPProcessor

        self.model = CLIPModel.from_pretrained(path, local_files_only=True).eval()
        self.processor = CLIPProcessor.from_pretrained(path, local_files_only=True)

    @staticmethod
    def _unit(out) -> torch.Tensor:
        emb = out if isinstance(out, torch.Tensor) else out.pooler_output
        return emb / emb.norm(dim=-1, keepdim=True)

    @torch.no_grad()
    def images(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] in [0, 1] -> [B, D]."""
        inputs = self.processor(images=list(images.clamp(0, 1)), return_tensors="pt", do_rescale=False)
        return self._unit(self.model.get_image_features(pixel_values=inputs["pixel_values"]))

    @torch.no_grad()
    def texts(self, texts: list[str]) -> torch.Tensor:
        inputs = self.processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
        return self._unit(self.model.get_text_features(input_ids=inputs["input_ids"],
                                                       attention_mask=inputs["attention_mask"]))


@QUALITY_METRICS.register("clip_score", "CLIP score 100*max(cos(image, prompt), 0) from local CLIP weights, / reference")
class ClipScoreMetric:
    def __init__(self, clip: LocalCLIP, reference: float):
        self.clip, self.reference = clip, reference

    def __call__(self, images: torch.Tensor, prompts) -> MetricValue:
        cos = (self.clip.images(images) * self.clip.texts(prompts)).sum(-1)
        raw = float((100.0 * cos.clamp(min=0)).mean())
        return normalise(raw, 0.0, self.reference)

    def references(self) -> dict:
        return {"bad": 0.0, "good": self.reference}


@QUALITY_METRICS.register("clip_iqa", "CLIP-IQA no-reference quality: P('Good photo.' vs 'Bad photo.') from local CLIP weights")
class ClipIQAMetric:
    ANTONYMS = ("Good photo.", "Bad photo.")

    def __init__(self, clip: LocalCLIP):
        self.clip = clip
        self.anchors = clip.texts(list(self.ANTONYMS))

    def __call__(self, images: torch.Tensor, prompts=None) -> MetricValue:
        logits = 100.0 * self.clip.images(images) @ self.anchors.T
        raw = float(torch.softmax(logits, dim=-1)[:, 0].mean())
        return normalise(raw, 0.0, 1.0)

    def references(self) -> dict:
        return {"bad": 0.0, "good": 1.0}


def sd_setup(cfg):
    from diffusers import DiffusionPipeline

    try:
        pipe = DiffusionPipeline.from_pretrained(cfg.model_path, local_files_only=True)
    except Exception as err:  # a folder that is not a diffusers pipeline
        raise ConfigError(cfg.model_path, "model_path", f"cannot load a diffusers pipeline from this folder: {err}") from err
    if getattr(pipe, "safety_checker", None) is not None:
        pipe.safety_checker = None
    pipe.set_progress_bar_config(disable=True)
    prompts = load_prompts(cfg.num_images, cfg.seed, cfg.prompts_file or None)
    built = {}
    clip = LocalCLIP(cfg.clip_model_path)
    for name in cfg.metrics:
        if name == "clip_score":
            built[name] = ClipScoreMetric(clip, cfg.clip_score_reference)
        elif name == "clip_iqa":
            built[name] = ClipIQAMetric(clip)
        else:
            raise ConfigError("recipe", "metrics", f"metric '{name}' does not apply to sd_local", "clip_score, clip_iqa")

    def generate(steps, seed, device):
        pipe.to(device)
        gen = torch.Generator(device=device).manual_seed(seed)
        out = pipe(prompt=prompts, num_inference_steps=steps, guidance_scale=cfg.guidance_scale, height=cfg.height,
                   width=cfg.width, generator=gen, output_type="pt")
        return out.images.float().cpu(), prompts

    identity = {"id": Path(cfg.model_path).name, "family": type(pipe).__name__, "path": str(cfg.model_path),
                "clip_path": str(cfg.clip_model_path)}
    return generate, built, identity
