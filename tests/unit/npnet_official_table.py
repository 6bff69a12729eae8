"""The official NPNet state-dict layout, written by hand from docs/npnet.md §1.6 and Appendix A (not from the code)."""

import torch

STAGES = [(2, 96, 3), (2, 192, 6), (6, 384, 12), (2, 768, 24)]  # (depth, C, heads), docs/npnet.md Appendix A


def official_table(text_dim: int) -> dict[str, tuple[int, ...]]:
    """The official state-dict layout written out from docs/npnet.md §1.6 and Appendix A (in-memory text key)."""
    t: dict[str, tuple[int, ...]] = {}
    for mlp in ("mlp1", "mlp2"):
        t |= {f"unet_svd.{mlp}.0.weight": (64, 256), f"unet_svd.{mlp}.0.bias": (64,),
              f"unet_svd.{mlp}.2.weight": (256, 64), f"unet_svd.{mlp}.2.bias": (256,)}
    t |= {"unet_svd.mlp3.0.weight": (256, 256), "unet_svd.mlp3.0.bias": (256,),
          "unet_svd.attention.qkv.weight": (768, 256), "unet_svd.attention.proj.weight": (256, 256),
          "unet_svd.attention.proj.bias": (256,), "unet_svd.bn.num_batches_tracked": (),
          "unet_svd.mlp4.0.weight": (1024, 256), "unet_svd.mlp4.0.bias": (1024,),
          "unet_svd.mlp4.2.weight": (256, 1024), "unet_svd.mlp4.2.bias": (256,)}
    t |= {f"unet_svd.bn.{k}": (256,) for k in ("weight", "bias", "running_mean", "running_var")}
    e = "unet_embedding."
    for s, (depth, c, h) in enumerate(STAGES):
        for j in range(depth):
            b = f"{e}swin.layers.{s}.blocks.{j}."
            t |= {b + "norm1.weight": (c,), b + "norm1.bias": (c,), b + "attn.relative_position_bias_table": (169, h),
                  b + "attn.qkv.weight": (3 * c, c), b + "attn.qkv.bias": (3 * c,), b + "attn.proj.weight": (c, c),
                  b + "attn.proj.bias": (c,), b + "norm2.weight": (c,), b + "norm2.bias": (c,),
                  b + "mlp.fc1.weight": (4 * c, c), b + "mlp.fc1.bias": (4 * c,), b + "mlp.fc2.weight": (c, 4 * c),
                  b + "mlp.fc2.bias": (c,)}
        if s > 0:
            d = f"{e}swin.layers.{s}.downsample."
            t |= {d + "norm.weight": (2 * c,), d + "norm.bias": (2 * c,), d + "reduction.weight": (c, 2 * c)}
    t |= {e + "swin.patch_embed.proj.weight": (96, 3, 4, 4), e + "swin.patch_embed.proj.bias": (96,),
          e + "swin.patch_embed.norm.weight": (96,), e + "swin.patch_embed.norm.bias": (96,),
          e + "swin.norm.weight": (768,), e + "swin.norm.bias": (768,), e + "swin.head.fc.weight": (1000, 768),
          e + "swin.head.fc.bias": (1000,), e + "upconv.weight": (4, 7, 1, 1), e + "upconv.bias": (4,),
          e + "downconv.weight": (3, 4, 1, 1), e + "downconv.bias": (3,)}
    t |= {"text_embedding.linear.weight": (8, 77 * text_dim), "text_embedding.linear.bias": (8,),
          "alpha": (1,), "beta": (1,)}
    return t


def synthetic_official_checkpoint(text_dim: int, seed: int = 0) -> dict:
    """A nested official-format dict (``embeeding`` key, α/β ``requires_grad`` leaves) of random tensors."""
    gen = torch.Generator().manual_seed(seed)
    nested: dict = {"unet_svd": {}, "unet_embedding": {}, "embeeding": {}}
    for key, shape in official_table(text_dim).items():
        if key.endswith("num_batches_tracked"):
            value = torch.tensor(7, dtype=torch.int64)
        else:
            value = torch.randn(shape, generator=gen)
        if key in ("alpha", "beta"):
            nested[key] = value.requires_grad_(True)
            continue
        branch, rest = key.split(".", 1)
        nested["embeeding" if branch == "text_embedding" else branch][rest] = value
    return nested
