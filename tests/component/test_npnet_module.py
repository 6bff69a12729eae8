"""NPNetModule: learns from NPD batches, bf16-mixed with an fp32 SVD, checkpoints, its noise method, the harness."""

import lightning as L
import pytest
import torch
from npnet_synthetic import SMALL, SyntheticPairDataModule, SyntheticPairs

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


def test_noise_method_is_the_live_network():
    module = NPNetModule(net=SMALL, swin_init="random")
    method = module.noise_method()
    assert method.plugin.net is module.net  # shared, not copied: an evaluation sees the current weights
    batch = torch.utils.data.default_collate([SyntheticPairs(2)[i] for i in range(2)])
    before = method.plugin(batch["noise"], batch["prompt_embeds"])
    with torch.no_grad():
        module.net.beta.fill_(0.5)
    assert not torch.equal(method.plugin(batch["noise"], batch["prompt_embeds"]), before)
    assert "state_dict" not in vars(module) and all(k.startswith("net.") for k in module.state_dict())


def test_harness_callback_logs_scores_and_grid_and_stays_out_of_checkpoints(tmp_path):
    from lightning.pytorch.loggers import MLFlowLogger

    from goldennoise.lit import NoiseMethodHarness
    from goldennoise.metrics import ShapesAlignment

    L.seed_everything(0)
    module = NPNetModule(net=SMALL, swin_init="random")  # the shapes backbone's dims: 4×8×8 latents, 16×64 tokens
    prompts = ["a red circle at the center", "a blue square left of a green cross"]
    harness = NoiseMethodHarness(backbone="shapes", prompts=prompts, seeds="0-1", steps=2,
                                 baselines={"gaussian": 1.0, "cfg3": 3.0}, metrics=[ShapesAlignment()], batch_size=3,
                                 grid_items=3, bootstrap_resamples=100)
    logger = MLFlowLogger(experiment_name="npnet", tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    trainer = _trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1, logger=logger, callbacks=[harness])
    trainer.fit(module, SyntheticPairDataModule(size=4, batch_size=2))
    logged = trainer.callback_metrics
    key = "shapes_alignment/alignment"
    for method in ("gaussian", "cfg3", "npnet"):
        assert f"val/gen/{method}/{key}" in logged
    torch.testing.assert_close(logged[f"val/gen/delta/{key}"],
                               logged[f"val/gen/npnet/{key}"] - logged[f"val/gen/gaussian/{key}"])
    history = logger.experiment.get_metric_history(logger.run_id, f"val/gen/npnet/{key}")
    assert len(history) == 1  # logged to MLflow once, for the one epoch
    artifacts = [a.path for a in logger.experiment.list_artifacts(logger.run_id, "generation")]
    assert artifacts == ["generation/epoch_000.png"]
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    checkpoint = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["state_dict"] and all(k.startswith("net.") for k in checkpoint["state_dict"])
    assert harness.state_key not in checkpoint.get("callbacks", {})  # no backbone, no metric in the checkpoint
    NPNetModule.load_from_checkpoint(tmp_path / "last.ckpt", weights_only=True)  # strict
