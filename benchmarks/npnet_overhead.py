"""NPNet's cost next to sampling, and its training throughput (paper: ≈ +3 % time for SDXL-50, docs/npnet.md §6.4).

Prints three things measured in one run:

1. time ratio: the shipped shapes NPNet's forward ÷ one full sampling (encode, N CFG steps, decode) of the same
   batch on the embedded ``shapes`` backbone;
2. FLOP ratio: the official SDXL NPNet ÷ a 50-step CFG SDXL sampling, both counted on the meta device with
   ``torch.utils.flop_counter`` (real-size SDXL UNet config, no weights; SVD added analytically as ≈ 22 n³);
3. training samples/s (forward + backward + AdamW) for the small and the official network.

    python benchmarks/npnet_overhead.py [--device cuda] [--batch 4] [--steps 10] [--repeats 5]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from goldennoise.backbones import generate, load_backbone  # noqa: E402
from goldennoise.noise import PRESETS, NPNet, load_npnet  # noqa: E402
from goldennoise.sampling import noise_for_seeds  # noqa: E402
from goldennoise.shapes.grammar import to_prompt  # noqa: E402
from goldennoise.shapes.splits import sample_scene  # noqa: E402

SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280),
                 layers_per_block=2,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
                 use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816)
"""SDXL base 1.0's UNet configuration (2.57 B parameters)."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one warm-up, without autograd."""
    times = []
    with torch.no_grad():
        fn()
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_ratio(device: torch.device, batch: int, steps: int, repeats: int) -> None:
    backbone = load_backbone("shapes").to(device)
    prompts = [to_prompt(sample_scene(i, "test").spec) for i in range(batch)]
    embeds = backbone.encode_prompt(prompts)[0].embeds.float()  # (B, 16, 64)
    net = load_npnet("shapes").to(device)  # the shipped network
    noise = noise_for_seeds(range(batch), backbone.latent_shape(), device=device)  # (B, 4, 8, 8)
    pipeline = backbone.pipeline("ddim")
    pipeline.set_progress_bar_config(disable=True)
    t_net = median_seconds(lambda: net(noise, embeds), device, repeats)
    t_sample = median_seconds(lambda: generate(pipeline, prompts, noise, num_inference_steps=steps,
                                               guidance_scale=5.5), device, repeats)
    print(f"[time] shapes, batch {batch}, {steps} DDIM steps with CFG: NPNet {1e3 * t_net:.1f} ms, sampling "
          f"{1e3 * t_sample:.1f} ms -> NPNet / sampling = {100 * t_net / t_sample:.2f} %")


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def flop_ratio(steps: int = 50) -> None:
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        net = NPNet.from_preset("sdxl")
        noise, embeds = torch.randn(1, 4, 128, 128), torch.randn(1, 77, 2048)
        unet = UNet2DConditionModel(**SDXL_UNET)
        x, t = torch.randn(2, 4, 128, 128), torch.tensor([500, 500])  # CFG: one batch of 2 per step
        cond = torch.randn(2, 77, 2048)
        added = {"text_embeds": torch.randn(2, 1280), "time_ids": torch.randn(2, 6)}
    svd = 22 * 256**3  # Golub-Kahan-Reinsch with U and V, the SVD FlopCounterMode cannot see
    npnet = count_flops(lambda: net(noise, embeds)) + svd
    per_step = count_flops(lambda: unet(x, t, encoder_hidden_states=cond, added_cond_kwargs=added))
    sampling = steps * per_step
    print(f"[flops] NPNet (SDXL dims) {npnet / 1e9:.2f} GFLOP (SVD ≈ {svd / 1e9:.2f}); SDXL UNet CFG step "
          f"{per_step / 1e12:.2f} TFLOP x {steps} = {sampling / 1e12:.1f} TFLOP (VAE and text encoders not counted) "
          f"-> NPNet / sampling = {100 * npnet / sampling:.4f} % (target <= 1 %)")


def train_throughput(device: torch.device, preset: str, batch: int, steps: int) -> None:
    config = PRESETS[preset]
    net = NPNet(config).to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01)
    c, s = config.latent_channels, config.latent_size
    noise, target = torch.randn(batch, c, s, s, device=device), torch.randn(batch, c, s, s, device=device)
    embeds = torch.randn(batch, config.text_len, config.text_dim, device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.mse_loss(net(noise, embeds), target).backward()
        optimizer.step()

    step()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    rate = batch * steps / (time.perf_counter() - start)
    print(f"[train] {preset} NPNet ({sum(p.numel() for p in net.parameters()):,} params), batch {batch}, fp32: "
          f"{rate:.1f} samples/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--batch", type=int, default=4, help="batch of the time ratio")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps of the time ratio")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-batch-small", type=int, default=64)
    parser.add_argument("--train-batch-official", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    time_ratio(device, args.batch, args.steps, args.repeats)
    flop_ratio()
    train_throughput(device, "shapes", args.train_batch_small, args.train_steps)
    train_throughput(device, "sdxl", args.train_batch_official, args.train_steps)


if __name__ == "__main__":
    main()
