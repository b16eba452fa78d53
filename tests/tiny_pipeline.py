"""A tiny randomly initialised Stable Diffusion pipeline and CLIP model built from configs (no
download), to test the text-to-image calibration path end to end on CPU."""

from pathlib import Path


def _byte_vocab() -> dict[str, int]:
    """Byte-level characters (and their end-of-word forms) plus CLIP's special tokens."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    return CLIPTokenizer(vocab=_byte_vocab(), merges=[], model_max_length=16)


def build_tiny_sd(folder: Path) -> Path:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tok = tokenizer(folder / "tok")
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16, norm_num_groups=4,
                                attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=4,
                        sample_size=16)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=len(tok) - 2, eos_token_id=len(tok) - 1, hidden_size=16,
                                        intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
                                        pad_token_id=len(tok) - 1, vocab_size=len(tok), max_position_embeddings=16))
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    out = folder / "tiny-sd"
    pipe.save_pretrained(out)
    return out


def build_tiny_clip(folder: Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(0)
    tok = tokenizer(folder / "cliptok")
    cfg = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2,
                                  "num_hidden_layers": 2, "vocab_size": len(tok), "max_position_embeddings": 16,
                                  "bos_token_id": len(tok) - 2, "eos_token_id": len(tok) - 1, "pad_token_id": len(tok) - 1},
                     vision_config={"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2,
                                    "num_hidden_layers": 2, "image_size": 16, "patch_size": 4},
                     projection_dim=16)
    model = CLIPModel(cfg)
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}),
                         tokenizer=tok)
    out = folder / "tiny-clip"
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out
