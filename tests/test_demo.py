"""The demo trains, evaluates and plots; tiny settings so it runs in seconds."""

import json

import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

import triton_segloss as tsl  # noqa: E402
from triton_segloss import demo  # noqa: E402
from triton_segloss._demo_model import ShapesData, SmallUNet  # noqa: E402

TINY = ["--epochs", "1", "--steps", "3", "--size", "32", "--batch", "4", "--val", "8", "--no-compile",
        "--no-progress", "--no-plot", "--threads", "1"]  # one thread: tiny convs, no OpenMP spin-waits


def test_one_tiny_epoch_writes_its_plots(tmp_path):
    out = tmp_path / "out"
    args = [a for a in TINY if a != "--no-plot"]
    history = demo.main(["--loss", "bce", *args, "--out", str(out)])
    assert (out / "curves.png").stat().st_size > 0
    assert (out / "samples.png").stat().st_size > 0
    saved = json.loads((out / "history.json").read_text())
    assert saved["loss"] == history["loss"] and len(history["step_loss"]) == 3
    assert 0.0 <= history["miou"][0] <= 1.0


def test_default_loss_with_check_matches_the_eager_reference(tmp_path):
    history = demo.main([*TINY, "--check", "--out", str(tmp_path)])
    assert history["loss_name"] == "boundary_bce_dice"
    assert history["check"]["max_loss_diff"] < 1e-5
    assert history["check"]["max_grad_diff_rel"] < 1e-4


@pytest.mark.parametrize("loss", ["dice", "bce_dice", "focal", "lovasz"])
def test_every_loss_choice_runs_and_matches_its_reference(tmp_path, loss):
    history = demo.main(["--loss", loss, *TINY, "--steps", "1", "--check", "--out", str(tmp_path)])
    assert history["check"]["max_loss_diff"] < 1e-5
    # Lovász: near-ties in the sort may order differently in float32, which moves a few subgradient entries
    assert history["check"]["max_grad_diff_rel"] < (1e-2 if loss == "lovasz" else 1e-4)


def test_compile_failure_falls_back_to_eager(tmp_path, monkeypatch, capsys):
    def broken_compile(fn, *args, **kwargs):
        def run(*a, **k):
            raise RuntimeError("inductor is unavailable here")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    args = [a for a in TINY if a != "--no-compile"]
    history = demo.main(["--loss", "bce", *args, "--out", str(tmp_path)])
    assert "falling back to eager" in capsys.readouterr().out
    assert history["compiled"] is False and len(history["step_loss"]) == 3


def test_missing_loss_is_a_clear_error(monkeypatch):
    monkeypatch.delattr(tsl.functional, "focal_loss")
    with pytest.raises(SystemExit, match="focal_loss is not available"):
        demo.main(["--loss", "focal", *TINY])


def test_shapes_data_is_deterministic_and_has_foreground():
    a_img, a_mask = ShapesData(32, seed=3).batch(8)
    b_img, b_mask = ShapesData(32, seed=3).batch(8)
    assert torch.equal(a_img, b_img) and torch.equal(a_mask, b_mask)
    assert a_img.shape == a_mask.shape == (8, 1, 32, 32)
    assert set(a_mask.unique().tolist()) <= {0.0, 1.0}
    assert (a_mask.flatten(1).sum(1) > 0).all()  # every image holds at least one shape


def test_threads_are_restored(tmp_path):
    before = torch.get_num_threads()
    demo.main(["--loss", "bce", *TINY, "--steps", "1", "--out", str(tmp_path)])
    assert torch.get_num_threads() == before


def test_unet_keeps_the_spatial_size():
    assert SmallUNet(width=4)(torch.randn(2, 1, 32, 32)).shape == (2, 1, 32, 32)
