"""The optimizer choice: fused AdamW on CPU where torch has it, the same update as the loop."""
from __future__ import annotations

import copy

import pytest
import torch

from reference.config import OptimConfig
from reference.train.optim import build_optimizer, cpu_fused_adamw, optimizer_impl
from reference.train.step import match_step_counts

TORCH = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.GRU(16, 8))


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        opt.zero_grad()
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()


def test_feature_check_follows_the_torch_version():
    # torch added the CPU kernel in 2.4; 2.1-2.3 (torch_mlu's oldest pairings) refuse it.
    assert cpu_fused_adamw() == (TORCH >= (2, 4))


def test_adamw_on_cpu_is_fused_where_available_and_says_so():
    opt = build_optimizer(OptimConfig(name="adamw"), _model().parameters(), 8)
    assert optimizer_impl(opt) == ("fused" if cpu_fused_adamw() else "for-loop")
    sgd = build_optimizer(OptimConfig(name="sgd"), _model().parameters(), 8)
    assert optimizer_impl(sgd) == "for-loop"


@pytest.mark.skipif(not cpu_fused_adamw(), reason="this torch has no fused CPU AdamW")
def test_fused_update_matches_the_loop():
    cfg = OptimConfig(name="adamw", lr=2e-3, weight_decay=1e-2)
    a, b = _model(), _model()
    fused = build_optimizer(cfg, a.parameters(), 8)
    loop = torch.optim.AdamW(b.parameters(), lr=2e-3, betas=cfg.betas, weight_decay=1e-2,
                             foreach=False)
    _train(a, fused, 20)
    _train(b, loop, 20)
    for pa, pb, p0 in zip(a.parameters(), b.parameters(), _model().parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
        assert (pa - p0).abs().max() > 1e-3  # both trained: equal updates, not none


@pytest.mark.skipif(not cpu_fused_adamw(), reason="this torch has no fused CPU AdamW")
def test_state_moves_between_fused_and_loop():
    """A checkpoint from a fused run resumes in a process that runs the loop (a torch
    without the kernel) and continues the same trajectory; the live choice is kept."""
    cfg = OptimConfig(name="adamw")
    a = _model()
    fused = build_optimizer(cfg, a.parameters(), 8)
    _train(a, fused, 5)
    b = copy.deepcopy(a)
    loop = torch.optim.AdamW(b.parameters(), lr=fused.param_groups[0]["lr"], betas=cfg.betas,
                             weight_decay=cfg.weight_decay, foreach=False)
    # deep-copied as a checkpoint would be: load_state_dict keeps the tensors it is given
    loop.load_state_dict(match_step_counts(copy.deepcopy(fused.state_dict()), loop))
    assert optimizer_impl(loop) == "for-loop"  # plain load_state_dict would make it fused
    _train(a, fused, 5, seed=2)
    _train(b, loop, 5, seed=2)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
