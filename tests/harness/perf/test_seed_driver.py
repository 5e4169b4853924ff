"""harness.perf.seed_driver / harness.perf.seedcmp: locating the seed's tree, and the compat shims' contracts.

The seed's trainer itself is not part of this repository (the user names a
checkout), so these tests pin what ds2bench contributes: the shims that let
the seed's unmodified modules run on current PyTorch must keep warp-ctc's and
old torchaudio's contracts, or the seed's side would time something else.
"""
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from harness.perf import seedcmp
from harness.perf.seed_driver import SEED_FILES, find_seed_root, install_shims


def _seed_tree(root):
    for f in SEED_FILES:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("")


def test_find_seed_root_accepts_the_tree_or_a_repository_checkout(tmp_path):
    tree = tmp_path / "repo" / "retired_benchmarks" / "never-adopted" / "speech_recognition"
    _seed_tree(tree)
    assert find_seed_root(tree) == tree.resolve()
    assert find_seed_root(tmp_path / "repo") == tree.resolve()


def test_find_seed_root_names_what_is_missing(tmp_path):
    (tmp_path / "pytorch").mkdir()
    with pytest.raises(FileNotFoundError, match="data/data_loader.py"):
        find_seed_root(tmp_path)


def test_seedcmp_refuses_a_wrong_tree_before_running_anything(tmp_path, capsys):
    with pytest.raises(SystemExit, match="not the seed trainer's tree"):
        seedcmp.main(["--seed-trainer", str(tmp_path), "--runs", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def shims(monkeypatch):
    """install_shims() for one test; sys.modules and scipy.signal restored afterwards."""
    import scipy.signal

    for name in ("torchaudio", "warpctc_pytorch"):
        monkeypatch.setitem(sys.modules, name, None)  # undone at teardown, whatever the shim sets
    names = ("hamming", "hann", "blackman", "bartlett")
    before = {n: scipy.signal.__dict__[n] for n in names if n in scipy.signal.__dict__}
    yield install_shims()
    for n in names:
        if n in before:
            setattr(scipy.signal, n, before[n])
        elif n in scipy.signal.__dict__:
            delattr(scipy.signal, n)


def test_ctc_shim_keeps_warp_ctc_contract(shims):
    """Raw activations in, loss summed over the batch out (shape (1,)), gradient to the acts."""
    ctc = sys.modules["warpctc_pytorch"].CTCLoss()
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(30, 3, 29, generator=g, requires_grad=True)
    labels = [[5, 6, 7], [8, 8], [9, 10, 11, 12]]
    flat = torch.IntTensor([c for lab in labels for c in lab])
    act_lens = torch.IntTensor([30, 25, 20])
    lab_lens = torch.IntTensor([len(lab) for lab in labels])
    loss = ctc(acts, flat, act_lens, lab_lens)
    assert loss.shape == (1,)
    # Sum of each utterance's CTC NLL under a softmax of the raw activations.
    per_utt = [F.ctc_loss(acts[:n, k:k + 1].log_softmax(2), torch.tensor([labels[k]]),
                          torch.tensor([n]), torch.tensor([len(labels[k])]), reduction="sum")
               for k, n in enumerate(act_lens.tolist())]
    torch.testing.assert_close(loss[0], torch.stack(per_utt).sum())
    loss.sum().backward()
    assert acts.grad is not None and acts.grad[20:, 2].abs().max() == 0  # padding gets none


def test_torchaudio_shim_returns_the_old_layout(shims, tmp_path):
    wave = (np.sin(np.arange(1600) / 7.0) * 12000).astype(np.int16)
    path = tmp_path / "a.wav"
    sf.write(str(path), wave, 16000, subtype="PCM_16")
    sound, rate = sys.modules["torchaudio"].load(str(path))
    assert rate == 16000 and tuple(sound.shape) == (1600, 1)  # samples × channels
    np.testing.assert_allclose(sound[:, 0].numpy(), wave / 32768.0, atol=1e-6)


def test_scipy_window_aliases(shims):
    import scipy.signal
    import scipy.signal.windows

    np.testing.assert_array_equal(scipy.signal.hamming(320), scipy.signal.windows.hamming(320))


def test_middle_rows_keep_the_sorted_middle_in_order(tmp_path):
    src = tmp_path / "libri_train_manifest.csv"
    src.write_text("".join(f"/a/{k}.wav,/a/{k}.txt\n" for k in range(10)))
    out = seedcmp.middle_rows(src, 4, tmp_path)
    assert out.read_text().splitlines() == [f"/a/{k}.wav,/a/{k}.txt" for k in (3, 4, 5, 6)]
    assert seedcmp.middle_rows(src, 50, tmp_path).read_text() == src.read_text()  # fewer rows
