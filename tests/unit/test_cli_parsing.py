"""The command line's shared machinery: one-line user errors, --debug, quieted Lightning noise, the run summary."""

import logging
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from lightning.pytorch.utilities import rank_zero_info

from goldennoise.cli import COMMANDS, Command, main, quiet_lightning, run_summary
from goldennoise.config_parser import ConfigParser

ROOT = Path(__file__).resolve().parents[2]
TINY_SDXL = str(ROOT / "configs" / "npd" / "tiny_sdxl.yaml")


def run_main(capsys, *args: str) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("args", "message"), [
    (["--scorers", '[{"metric": "fid"}]'], "error: Unknown metric 'fid'; choose one of"),
    (["--num_steps", "abc"], "error: Parser key \"num_steps\": Expected a <class 'int'>. Got value: abc"),
    (["--num_stepz", "3"], "error: unrecognized arguments: --num_stepz 3"),
])
def test_collect_user_errors_are_one_line_with_exit_code_2(capsys, args, message):
    code, err = run_main(capsys, "collect", "--config", TINY_SDXL, *args)
    assert code == 2 and len(err) == 1 and err[0].startswith(message)


def test_a_yaml_error_in_a_later_config_names_the_file_and_line(tmp_path, capsys):
    broken = tmp_path / "overlay.yaml"
    broken.write_text("num_steps: 3\nscorers: [{metric: hpsv2}\nseeds: 0-1\n")
    code, err = run_main(capsys, "collect", "--config", TINY_SDXL, "--config", str(broken))
    assert code == 2 and err == [f"error: {broken}: not valid YAML: did not find expected ',' or ']' "
                                 "(line 3, column 1)"]


def test_debug_flag_or_environment_variable_shows_the_traceback(monkeypatch):
    args = ["collect", "--config", TINY_SDXL, "--scorers", '[{"metric": "fid"}]']
    with pytest.raises(ValueError, match="Unknown metric 'fid'"):
        main([*args, "--debug"])
    monkeypatch.setenv("GOLDENNOISE_DEBUG", "1")
    with pytest.raises(ValueError, match="Unknown metric 'fid'"):
        main(args)


class Part:
    """A base class configured by class_path."""


class BrokenPart(Part):
    def __init__(self, size: int = 1) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}.")
        self.missing.size = size  # a bug: AttributeError


def parse_part(argv: list[str]) -> object:
    parser = ConfigParser()
    parser.add_argument("--part", type=Part | None)
    return parser.instantiate(parser.parse_args(argv))


def test_an_error_wrapped_by_jsonargparse_is_reported_by_its_cause(capsys, monkeypatch):
    """jsonargparse wraps what a class's __init__ raises; a ValueError is the user's, anything else a bug."""
    monkeypatch.setitem(COMMANDS, "part", Command("Build a part.", parse_part))
    code, err = run_main(capsys, "part", "--part", f"{__name__}.BrokenPart", "--part.size=-1")
    assert code == 2 and err == ["error: size must be >= 0, got -1."]
    with pytest.raises(ValueError) as info:  # jsonargparse's wrapper of a bug propagates, with its traceback
        main(["part", "--part", f"{__name__}.BrokenPart"])
    cause = info.value
    while cause is not None and not isinstance(cause, AttributeError):
        cause = cause.__cause__ or cause.__context__
    assert cause is not None


@pytest.mark.parametrize("error", [FileNotFoundError("No teacher data in /data/x."),
                                   IsADirectoryError(21, "Is a directory", "out.safetensors"),
                                   PermissionError(13, "Permission denied", "/root/x")])
def test_a_missing_or_unreadable_file_is_a_user_error(capsys, monkeypatch, error):
    def fail(argv: list[str]) -> None:
        raise error

    monkeypatch.setitem(COMMANDS, "fail", Command("Fail.", fail))
    code, err = run_main(capsys, "fail")
    assert code == 2 and err == [f"error: {error}"]


def test_unexpected_errors_keep_their_traceback(monkeypatch):
    def fail(argv: list[str]) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(COMMANDS, "fail", Command("Fail.", fail))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["fail"])


def test_quiet_lightning_drops_tips_and_known_warnings_only(caplog):
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_lightning():
            rank_zero_info("💡 Tip: install something")
            rank_zero_info("GPU available: False")
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
            warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False"]
    assert [str(w.message) for w in caught] == ["something else is deprecated"]
    rank_zero_info("💡 Tip: shown again outside a command")
    assert caplog.records[-1].getMessage().startswith("💡 Tip")


def test_run_summary_is_a_labelled_block_one_metric_per_line():
    trainer = SimpleNamespace(callback_metrics={"val/mse": torch.tensor(0.25), "train/loss": torch.tensor(1.5)},
                              loggers=[], checkpoint_callback=SimpleNamespace(best_model_path="runs/x/best.ckpt"))
    assert run_summary(trainer).splitlines() == [
        "fit finished", "  metrics:", "    train/loss  1.5", "    val/mse     0.25", "  checkpoint: runs/x/best.ckpt"]


def test_user_facing_configs_show_progress():
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        assert config.get("progress", True) is True, path
        assert (config.get("trainer") or {}).get("enable_progress_bar", True) is True, path
