"""NPNetModule: learns from NPD-style batches, bf16-mixed with an fp32 SVD, checkpoints, generation check."""

from dataclasses import replace

import lightning as L
import pytest
import torch
from npnet_synthetic import SMALL, SyntheticPairDataModule, SyntheticPairs
from torchmetrics import Metric

from goldennoise.lit.npnet import NPNetModule
from goldennoise.noise import export_npnet, load_npnet


def _trainer(**kwargs) -> L.Trainer:
    defaults = {"accelerator": "cpu", "logger": False, "enable_progress_bar": False, "enable_checkpointing": False,
                "enable_model_summary": False}
    return L.Trainer(**(defaults | kwargs))


def test_fit_learns_and_checkpoint_reloads(tmp_path):
    L.seed_everything(0)
    module = NPNetModule(net=SMALL, swin_init="random", lr=1e-3)
    trainer = _trainer(max_epochs=3)
    trainer.fit(module, SyntheticPairDataModule(size=32, batch_size=8))
    metrics = trainer.callback_metrics
    assert metrics["val/mse"] < 0.8 * metrics["val/identity_mse"]
    assert module.net.alpha.item() != 0 and module.net.beta.item() != 0
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    checkpoint = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)  # plain hparams
    assert checkpoint["hyper_parameters"]["net"]["text_dim"] == 64
    reloaded = NPNetModule.load_from_checkpoint(tmp_path / "last.ckpt", weights_only=True)
    batch = torch.utils.data.default_collate([SyntheticPairs(2)[i] for i in range(2)])
    module.eval()
    torch.testing.assert_close(reloaded(batch["noise"], batch["prompt_embeds"]),
                               module(batch["noise"], batch["prompt_embeds"]))
    net = load_npnet(tmp_path / "last.ckpt", config=SMALL)  # Lightning checkpoint → bare network
    torch.testing.assert_close(net(batch["noise"], batch["prompt_embeds"]), module(batch["noise"],
                                                                                  batch["prompt_embeds"]))


def test_bf16_mixed_trains_with_svd_in_fp32():
    L.seed_everything(0)
    module = NPNetModule(net=SMALL, swin_init="random", lr=1e-3)
    seen: dict[str, list] = {"svd": [], "downconv": []}
    module.net.unet_svd.register_forward_hook(
        lambda m, a, out: seen["svd"].append((torch.is_autocast_enabled("cpu"), out.dtype)))
    module.net.unet_embedding.downconv.register_forward_hook(lambda m, a, out: seen["downconv"].append(out.dtype))
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    trainer = _trainer(max_steps=4, precision="bf16-mixed", limit_val_batches=1)
    trainer.fit(module, SyntheticPairDataModule(size=16, batch_size=4))
    assert seen["svd"] and all(on and dtype == torch.float32 for on, dtype in seen["svd"])  # fp32 under autocast
    assert torch.bfloat16 in seen["downconv"]  # the rest of NPNet did run in bf16
    assert all(p.dtype == torch.float32 for p in module.net.parameters())  # fp32 master weights
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    changed = [k for k, v in module.net.state_dict().items() if not torch.equal(v, before[k])]
    assert "alpha" in changed and any(k.startswith("unet_svd.mlp4") for k in changed)


def test_init_checkpoint_starts_a_fresh_fit_from_npnet_weights(tmp_path):
    source = NPNetModule(net=SMALL, swin_init="random").net
    with torch.no_grad():
        source.alpha.fill_(0.4)
    export_npnet(source, tmp_path / "start.pth")
    module = NPNetModule(net=SMALL, swin_init="imagenet", init_checkpoint=str(tmp_path / "start.pth"), lr=0.0)
    _trainer(max_steps=1, limit_val_batches=0).fit(module, SyntheticPairDataModule(size=4, batch_size=2))
    for key, value in source.state_dict().items():  # lr 0: the weights are the file's (no ImageNet Swin fetched)
        assert torch.equal(module.net.state_dict()[key], value), key


def test_shared_prompt_batches_are_refused():
    module = NPNetModule(net=SMALL, swin_init="random")
    batch = torch.utils.data.default_collate([SyntheticPairs(2)[i] for i in range(2)])
    batch["prompt_embeds"] = batch["prompt_embeds"][:1]  # the official prompt[0] shortcut
    with pytest.raises(ValueError, match="own prompt"):
        module.training_step(batch, 0)


class MeanBrightness(Metric):
    """A weightless stand-in metric: mean pixel value (the real scorers are injected the same way)."""

    name = "brightness"

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, images: torch.Tensor, prompts: list[str]) -> None:
        self.total += images.mean(dim=(1, 2, 3)).sum()
        self.count += images.shape[0]

    def compute(self) -> torch.Tensor:
        return self.total / self.count


def test_generation_check_logs_metrics_grid_and_keeps_backbone_out(tmp_path):
    from lightning.pytorch.loggers import MLFlowLogger

    config = replace(SMALL, text_dim=32, text_len=77, latent_size=32)  # tiny-sd: 4×32×32 latents, 77×32 tokens
    L.seed_everything(0)
    module = NPNetModule(net=config, swin_init="random", backbone="tiny-sd", metrics=[MeanBrightness()],
                         generation_prompts=["a red circle", "a blue square"], generation_steps=2,
                         guidance_scale=3.0)
    logger = MLFlowLogger(experiment_name="npnet", tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    trainer = _trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1, logger=logger)
    trainer.fit(module, SyntheticPairDataModule(size=4, batch_size=2, config=config))
    logged = trainer.callback_metrics
    for key in ("gaussian/brightness", "npnet/brightness", "delta/brightness"):
        assert f"val/gen/{key}" in logged
    torch.testing.assert_close(logged["val/gen/delta/brightness"],
                               logged["val/gen/npnet/brightness"] - logged["val/gen/gaussian/brightness"])
    artifacts = [a.path for a in logger.experiment.list_artifacts(logger.run_id, "generation")]
    assert artifacts == ["generation/epoch_000.png"]
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    state = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert state and all(k.startswith("net.") for k in state)  # no backbone, no metric state
    NPNetModule.load_from_checkpoint(tmp_path / "last.ckpt", weights_only=True)  # strict; backbone refilled
