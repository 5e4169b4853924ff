"""Numeric precision a run names, sets and reports: fp32 math mode and AMP.

* `train.fp32_precision` (`ieee` | `tf32`) is set on every run, whatever the
  device, through every switch this torch has: the new per-backend API
  (`torch.backends.cuda.matmul/cudnn.conv/cudnn.rnn.fp32_precision`, torch >=
  2.9; never mixed with the legacy one, which torch rejects) or the legacy
  `allow_tf32` flags and `torch.set_float32_matmul_precision`, plus torch_mlu's
  `torch.backends.cnnl` / `torch.backends.mlu.matmul` flags where present.
  cuDNN convolutions and RNNs default to TF32 on recent torch: a closed run
  that claims FP32 must switch that off.
* `train.fp32_precision: bf16` is CPU-only, the analogue of TF32 there: tensors
  stay fp32, but the CPU GRU's large GEMMs (the input projection and the three
  weight/input gradients, `reference/model/gru.py`) take bfloat16 operands
  with fp32 accumulation; their products come back rounded to bfloat16 and
  are carried on in fp32. The CPU training path of the second (multi-channel)
  convolution does the same (`reference/model/conv.py`: operands cast to bf16,
  output rounded to bf16, bias added in fp32); the first, with one input
  channel, stays fp32. oneDNN's own switch for fp32 convolutions
  (`torch.backends.mkldnn.conv.fp32_precision`, torch >= 2.7) is set back to
  `none` whatever the mode: through it the convolutions were slower (15.8
  against 13.6 ms a step on cached shapes, 76 against 22 ms on new ones), and
  the flags say so. The recurrent step's product and everything else stay
  fp32. On a device other than the CPU it is refused (`check_fp32_precision`).
* `train.amp` runs what it says. Before training, one forward and backward of
  a tiny model of the run's RNN type under the autocast it asked for measures
  the dtype the RNN actually computes in (vendor autocast wrappers may cast
  to half whatever was asked). bf16 that runs as float16 is an error; fp16
  gets a GradScaler, or an error where this torch has none for the device.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager, Iterable

import torch
from torch import nn

from reference.config import FeatureConfig, ModelConfig
from reference.device import autocast_enabled, device_module
from reference.model.kernels import bf16_gemm, set_bf16_gemm

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_NEW_API = (("cuda.matmul", "cuda_matmul"), ("cudnn.conv", "cudnn_conv"), ("cudnn.rnn", "cudnn_rnn"))
_MLU_FLAGS = (("cnnl", "cnnl_allow_tf32"), ("mlu.matmul", "mlu_matmul_allow_tf32"))


class PrecisionError(ValueError):
    """The requested precision cannot run as named on this device and torch."""


def _attr(root: Any, dotted: str) -> Any:
    """`root.a.b` or None; torch < 2.4's cuBLAS flag object raises AssertionError, not
    AttributeError, for a name it does not know (so plain hasattr would crash there)."""
    for name in dotted.split("."):
        try:
            root = getattr(root, name)
        except (AttributeError, AssertionError):
            return None
        if root is None:
            return None
    return root


def _new_api() -> bool:
    return _attr(torch.backends, "cuda.matmul.fp32_precision") is not None


def check_fp32_precision(mode: str, device_type: str) -> None:
    """PrecisionError (one line) when `mode` cannot run on `device_type`."""
    if mode == "bf16" and device_type != "cpu":
        raise PrecisionError(f"train.fp32_precision bf16 is a CPU setting (AMX/AVX512-BF16 "
                             f"GEMMs); on {device_type} use tf32 or train.amp=bf16")


def apply_fp32_precision(mode: str) -> dict[str, Any]:
    """Set fp32 math to `mode` ("ieee", "tf32" or "bf16") everywhere; returns the flags as
    read back. "bf16" leaves the accelerator switches at IEEE fp32."""
    tf32 = mode == "tf32"
    set_bf16_gemm(mode == "bf16")
    conv = _attr(torch.backends, "mkldnn.conv")
    if conv is not None and _attr(conv, "fp32_precision") is not None:
        # torch's default, "none" (follow the global setting, IEEE unless changed),
        # whatever the mode: bf16 convolutions were slower (module docstring).
        conv.fp32_precision = "none"
    mode = "ieee" if mode == "bf16" else mode
    b = torch.backends
    if _new_api():
        for path, _ in _NEW_API:
            _attr(b, path).fp32_precision = mode
    else:
        b.cuda.matmul.allow_tf32 = tf32
        b.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
    for path, _ in _MLU_FLAGS:
        mod = _attr(b, path)
        if _attr(mod, "allow_tf32") is not None:
            mod.allow_tf32 = tf32
    return precision_flags()


def precision_flags() -> dict[str, Any]:
    """Every fp32-precision switch this torch has, as it stands now."""
    b = torch.backends
    out: dict[str, Any] = {}
    if _new_api():
        for path, name in _NEW_API:
            out[f"{name}_fp32_precision"] = _attr(b, path).fp32_precision
    else:
        out["cuda_matmul_allow_tf32"] = bool(b.cuda.matmul.allow_tf32)
        out["cudnn_allow_tf32"] = bool(b.cudnn.allow_tf32)
        out["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    for path, name in _MLU_FLAGS:
        mod = _attr(b, path)
        if _attr(mod, "allow_tf32") is not None:
            out[name] = bool(mod.allow_tf32)
    for path, name in (("mkldnn.conv", "mkldnn_conv"), ("mkldnn.matmul", "mkldnn_matmul")):
        value = _attr(_attr(b, path), "fp32_precision")
        if value is not None:
            out[f"{name}_fp32_precision"] = value
    out["cpu_gru_gemm_dtype"] = "bfloat16" if bf16_gemm() else "float32"
    # The same switch takes the second (multi-channel) convolution's CPU training
    # path to bf16 operands (reference/model/conv.py); conv1 is always fp32.
    out["cpu_conv2_dtype"] = "bfloat16" if bf16_gemm() else "float32"
    return out


def _grad_scaler(device: torch.device) -> Any | None:
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        try:
            return amp.GradScaler(device.type)
        except (TypeError, RuntimeError, ValueError):  # older torch: no device argument / type
            pass
    legacy = getattr(getattr(device_module(device.type), "amp", None), "GradScaler", None)
    return legacy() if legacy is not None else None


def rnn_dtypes(model_cfg: ModelConfig, feat: FeatureConfig, device: torch.device,
               dtype: torch.dtype | None) -> set[torch.dtype]:
    """The dtypes the RNN layers compute in during a training step under `dtype` autocast,
    measured on a tiny model of the same structure (raises what the kernels raise)."""
    from reference.data.features import num_bins
    from reference.model.deepspeech2 import DeepSpeech2

    tiny = ModelConfig(rnn_type=model_cfg.rnn_type, hidden=8, layers=2,
                       bidirectional=model_cfg.bidirectional,
                       rnn_batch_norm=model_cfg.rnn_batch_norm, conv_channels=2)
    with torch.random.fork_rng(devices=[]):  # the run's seeded initialisation stays as it was
        model = DeepSpeech2(tiny, feat).to(device).train()
    seen: set[torch.dtype] = set()
    # Each RNN layer's output (whichever kernel ran it: the vendor's or the CPU fast path).
    hooks = [layer.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
             for layer in model.rnns]
    feats = torch.ones(2, 1, num_bins(feat), 64, device=device)
    ctx = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    try:
        with ctx:
            if dtype is not None and not autocast_enabled(device.type):
                # torch warns "not supported ... Disabling autocast" and runs fp32.
                raise RuntimeError(f"this torch's {device.type} autocast does not support {dtype}")
            logits, _ = model(feats, torch.tensor([64, 48]))
        logits.float().sum().backward()
    finally:
        for h in hooks:
            h.remove()
    return seen


@dataclass
class AmpPlan:
    """What the trainer runs: autocast dtype, GradScaler, and the measured RNN dtype."""

    amp: str
    dtype: torch.dtype | None
    rnn_dtype: str
    scaler: Any | None = None

    def autocast(self, device_type: str) -> ContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
             params: Iterable[nn.Parameter], clip_norm: float) -> None:
        """backward, clip, optimizer step (scaled and unscaled first under fp16)."""
        if self.scaler is None:
            loss.backward()
            nn.utils.clip_grad_norm_(params, clip_norm)
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)  # clip the true gradients
        nn.utils.clip_grad_norm_(params, clip_norm)
        self.scaler.step(optimizer)  # skips the step when a gradient is inf/NaN
        self.scaler.update()

    def info(self) -> dict[str, Any]:
        return {"amp": self.amp, "autocast_dtype": str(self.dtype).replace("torch.", "")
                if self.dtype else None, "rnn_dtype": self.rnn_dtype,
                "grad_scaler": self.scaler is not None}


def plan_amp(amp: str, model_cfg: ModelConfig, feat: FeatureConfig,
             device: torch.device) -> AmpPlan:
    """The AMP a run will really use; PrecisionError when `amp` cannot run as named."""
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return AmpPlan("off", None, "float32")
    where = f"train.amp={amp} on {device.type} ({model_cfg.rnn_type.upper()})"
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PrecisionError(f"{where}: this GPU has no bfloat16; use train.amp=fp16 or off")
    try:
        seen = rnn_dtypes(model_cfg, feat, device, dtype)
    except RuntimeError as err:
        raise PrecisionError(f"{where}: a training step fails under autocast "
                             f"({str(err).splitlines()[0]}); use train.amp=off"
                             + (" or bf16" if amp == "fp16" else "")) from None
    names = sorted(str(d).replace("torch.", "") for d in seen)
    if dtype is torch.bfloat16 and torch.float16 in seen:
        raise PrecisionError(f"{where}: the RNN computes in float16 under bfloat16 autocast (the "
                             "stack's autocast RNN casts to half): use train.amp=fp16, which "
                             "adds a GradScaler, or off")
    scaler = None
    if torch.float16 in seen or dtype is torch.float16:
        scaler = _grad_scaler(device)
        if scaler is None:
            raise PrecisionError(f"{where}: float16 needs a GradScaler and this torch has none "
                                 f"for {device.type}; use train.amp=off")
    return AmpPlan(amp, dtype, "+".join(names), scaler)
