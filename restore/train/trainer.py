"""The training engine: one Accelerate loop for supervised and adversarial restoration training.

    from restore.train import Trainer, load_config
    Trainer(load_config("recipes/configs/sr_gan.yaml", ["--train.steps", "100"])).train()

What one iteration does (BasicSR/ESRGAN order):

1. the task makes ``input`` (and ``mask``) from the clean ``target`` on the device, seeded by the
   batch's per-item seeds;
2. generator step: ``pred = G(input)``; with a discriminator, D runs on ``pred`` (and on ``target``
   without gradients) through the *unwrapped* module with its parameters frozen, so DDP's reducer
   for D is not involved and no zero-times-parameters trick is needed; the generator LossSet gets
   ``pred, target, input, mask, fake_logits, real_logits, fake_features, real_features``;
3. discriminator step (from ``discriminator.start_step``, every ``update_every`` steps): D on
   ``target`` and ``pred.detach()`` through the DDP-wrapped module; its LossSet gets
   ``fake_logits, real_logits, real, fake, discriminator, grad_scaler``;
4. a step whose gradient norm is not finite is skipped (fp16: the grad scaler skips it and lowers
   its scale) and reported; ``train.max_bad_steps`` consecutive skips stop the run with an error.

Checkpoints are ``accelerator.save_state`` folders written under a temporary name and renamed when
complete; the EMA weights and the step counter are saved beside them as safetensors and JSON (not
pickles). ``output.resume: latest`` continues from the newest one with the same data order.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import checkpoints
from .config import Config, config_to_dict, save_config
from .ema import ModelEMA
from .sampler import EpochSampler
from .tasks import AudioTask, DiffusionTask, Task, build_task, pair_kind
from .validation import build_validation_set, evaluate, sample_grid

__all__ = ["NonFiniteLossError", "TrainResult", "Trainer", "resolve_mixed_precision"]

ADVERSARIAL_INPUTS = ("fake_logits", "real_logits", "fake_features", "real_features")
STATE_FILE = "trainer_state.json"
EMA_FILE = "ema.safetensors"


class NonFiniteLossError(RuntimeError):
    """Too many consecutive training steps had a non-finite loss or gradient."""


@dataclass
class TrainResult:
    """What a finished run leaves: the step reached, final metrics and the files written."""

    step: int
    output_dir: Path
    weights: Path | None
    metrics: dict[str, float] = field(default_factory=dict)
    skipped_steps: int = 0
    seconds: float = 0.0


def resolve_mixed_precision(requested: str, supports_bf16: bool = True, supports_fp16: bool = True) -> str:
    """``auto`` -> ``bf16`` on a CUDA device that supports it (and a model that does), else ``no``.

    ``auto`` takes ``accelerate launch --mixed_precision fp16|bf16`` (or the accelerate config) when
    one is set. On CPU ``auto`` means float32: bf16 autocast is slower than float32 there (measured in
    docs/benchmarks.md). An explicit half type the model does not support falls back to ``no``
    with a warning.
    """
    if requested not in ("auto", "no", "fp16", "bf16"):
        raise ValueError(f"train.mixed_precision must be auto, no, fp16 or bf16, got {requested!r}")
    if requested == "auto":
        launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")  # accelerate launch --mixed_precision
        if launched in ("fp16", "bf16"):
            requested = launched
    if requested == "auto":
        cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return "bf16" if cuda_bf16 and supports_bf16 else "no"
    if (requested == "bf16" and not supports_bf16) or (requested == "fp16" and not supports_fp16):
        warnings.warn(f"the model does not support {requested}; training in float32", stacklevel=2)
        return "no"
    return requested


def _lr_lambda(scheduler: str, steps: int, warmup: int, milestones: list[int], gamma: float):
    """A multiplicative learning-rate schedule: linear warm-up, then constant, cosine or multistep."""
    if scheduler not in ("constant", "cosine", "multistep"):
        raise ValueError(f"scheduler must be constant, cosine or multistep, got {scheduler!r}")

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if scheduler == "cosine":
            progress = min((step - warmup) / max(steps - warmup, 1), 1.0)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if scheduler == "multistep":
            return gamma ** sum(step >= m for m in milestones)
        return 1.0

    return factor


def _optimizer(
    params, name: str, lr: float, betas: list[float], weight_decay: float
) -> torch.optim.Optimizer:
    classes = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if name not in classes:
        raise ValueError(f"train.optimizer must be one of {sorted(classes)}, got {name!r}")
    return classes[name](params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def _needs(loss_set: nn.Module, names: tuple[str, ...]) -> set[str]:
    """Which of ``names`` some term of the LossSet takes (after its input renames)."""
    wanted = set()
    for term in loss_set.terms:
        for arg in (*term.spec.inputs, *term.spec.optional_inputs):
            key = term.inputs.get(arg, arg)
            if key in names:
                wanted.add(key)
    return wanted


def _discriminator_outputs(discriminator, image, condition, features: bool):
    """``(logits, features or None)`` of a discriminator (conditional ones get ``condition``)."""
    args = (image, condition) if condition is not None else (image,)
    if features:
        logits, feats = discriminator(*args, return_features=True)
        return logits, feats
    return discriminator(*args), None


class Trainer:
    """Train a restoration generator (and optionally a discriminator) from a :class:`Config`.

    ``train_dataset`` and ``validation_pairs`` replace the ones the config describes (tests and
    custom recipes); ``accelerator`` replaces the one built from the config.
    """

    def __init__(
        self,
        config: Config,
        *,
        accelerator: Any = None,
        train_dataset: Any = None,
        validation_pairs: list | None = None,
    ) -> None:
        from accelerate import Accelerator
        from accelerate.utils import GradScalerKwargs, ProjectConfiguration, set_seed

        import losses
        import restore.models as models

        self.config = config
        self._lookups: dict[tuple[str, int], Any] = {}  # see _once
        self.output_dir = Path(config.output.dir)
        self.task: Task | AudioTask | DiffusionTask = build_task(config.task, config.data.sample_rate)

        spec = models.get_spec(config.model.name)
        if accelerator is None:
            precision = resolve_mixed_precision(
                config.train.mixed_precision, spec.supports_bf16, spec.supports_fp16
            )
            handlers = []
            if precision == "fp16" and config.discriminator.name:
                # R1 with fp16 logits overflows at GradScaler's default scale 2**16 (see losses.R1Penalty)
                handlers.append(GradScalerKwargs(init_scale=2.0**10))
            accelerator = Accelerator(
                mixed_precision=precision,
                gradient_accumulation_steps=config.train.gradient_accumulation_steps,
                log_with=self._tracker(config.output.tracker),
                project_config=ProjectConfiguration(
                    project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")
                ),
                kwargs_handlers=handlers,
                step_scheduler_with_optimizer=False,
            )
        self.accelerator = accelerator
        set_seed(config.train.seed, device_specific=False)  # the same initial weights on every rank
        generator = models.build(config.model.name, **config.model.args)
        self._check_generator(generator)
        if config.model.weights:
            generator.load_state_dict(models.load(config.model.weights).state_dict())
        self.spec = generator.spec
        discriminator = None
        if config.discriminator.name:
            discriminator = models.build(config.discriminator.name, **config.discriminator.args)

        device = accelerator.device
        memory_format = torch.channels_last if config.train.channels_last else torch.preserve_format
        generator.to(device, memory_format=memory_format)
        if discriminator is not None:
            discriminator.to(device, memory_format=memory_format)

        self.g_loss = losses.build(config.losses).to(device)
        self.d_loss = (
            losses.build(config.discriminator.losses).to(device) if discriminator is not None else None
        )
        diffusion_inputs = _needs(self.g_loss, DiffusionTask.loss_inputs)
        if diffusion_inputs and not isinstance(self.task, DiffusionTask):
            raise ValueError(
                f"losses that take {sorted(diffusion_inputs)} (the 'denoising' loss) need a diffusion task "
                f"(diffusion_sr, diffusion_inpaint, diffusion), but task.name is {self.task.name!r}"
            )
        self.g_adversarial = _needs(self.g_loss, ADVERSARIAL_INPUTS)
        if self.g_adversarial and discriminator is None:
            raise ValueError(
                f"losses {sorted(self.g_adversarial)} need a discriminator: set discriminator.name "
                "(e.g. unet_discriminator, vgg_discriminator, patchgan)"
            )
        self.d_features = discriminator is not None and bool(
            {"fake_features", "real_features"}
            & (self.g_adversarial | _needs(self.d_loss, ADVERSARIAL_INPUTS))
        )
        self.r1_real = self.d_loss is not None and any(t.spec.name == "r1" for t in self.d_loss.terms)

        tc = config.train
        g_params = list(generator.parameters()) + list(self.g_loss.parameters())
        opt_g = _optimizer(g_params, tc.optimizer, tc.lr, tc.betas, tc.weight_decay)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(
            opt_g, _lr_lambda(tc.scheduler, tc.steps, tc.warmup_steps, tc.milestones, tc.gamma)
        )
        opt_d = None
        if discriminator is not None:
            dc = config.discriminator
            d_params = list(discriminator.parameters()) + list(self.d_loss.parameters())
            opt_d = _optimizer(d_params, tc.optimizer, dc.lr, dc.betas, dc.weight_decay)
            self.sched_d = torch.optim.lr_scheduler.LambdaLR(
                opt_d,
                _lr_lambda(dc.scheduler or tc.scheduler, tc.steps, tc.warmup_steps, tc.milestones, tc.gamma),
            )

        dataset = train_dataset if train_dataset is not None else self._dataset()
        self.dataset = dataset
        self.sampler = EpochSampler(len(dataset), seed=tc.seed)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=config.data.batch_size,
            sampler=self.sampler,
            num_workers=config.data.num_workers,
            drop_last=True,
            pin_memory=device.type == "cuda",
            persistent_workers=config.data.num_workers > 0,
        )
        if tc.compile:
            generator = torch.compile(generator)
        if discriminator is not None:
            generator, discriminator, opt_g, opt_d, loader = accelerator.prepare(
                generator, discriminator, opt_g, opt_d, loader
            )
        else:
            generator, opt_g, loader = accelerator.prepare(generator, opt_g, loader)
        if len(loader) == 0:
            raise ValueError(
                f"the training set has {len(dataset)} items, fewer than one batch of "
                f"{config.data.batch_size} "
                f"per process ({accelerator.num_processes}); lower data.batch_size or raise data.repeat"
            )
        self.generator, self.discriminator = generator, discriminator
        self.opt_g, self.opt_d = opt_g, opt_d
        self.loader = loader
        self.ema = None
        if tc.ema_decay is not None:
            self.ema = ModelEMA(self._unwrap(generator), tc.ema_decay, tc.ema_start)
        self.validation_pairs = validation_pairs
        self.step = 0
        self.skipped_steps = 0
        self._bad_in_a_row = 0
        self._snapshots = None
        self._log_file = self.output_dir / "metrics.jsonl"
        self._seconds_before = 0.0  # training time of the run before this process (from a checkpoint)
        self._started = time.perf_counter()

    # ------------------------------------------------------------------ setup helpers

    def _check_generator(self, generator: nn.Module) -> None:
        spec = generator.spec
        modality = "audio" if spec.inputs[0] == "audio" else "image"
        if modality != self.task.modality:
            raise ValueError(
                f"model '{spec.name}' takes {modality}, but task '{self.task.name}' trains on "
                f"{self.task.modality}; pick a model of restore.models.available("
                f"{'audio' if self.task.modality == 'audio' else None!r})"
            )
        model_rate = getattr(generator, "sample_rate", None)
        if modality == "audio" and model_rate is not None and model_rate != self.config.data.sample_rate:
            raise ValueError(
                f"model '{spec.name}' runs at {model_rate} Hz, but data.sample_rate is "
                f"{self.config.data.sample_rate}; set model.args.sample_rate or data.sample_rate"
            )
        diffusion_model = spec.task == "diffusion"
        if diffusion_model != isinstance(self.task, DiffusionTask):
            hint = (
                "train it with task.name diffusion_sr, diffusion_inpaint or diffusion"
                if diffusion_model
                else "pick a diffusion model (sr3_x4_tiny, diffusion_inpaint_tiny, ddpm_unconditional_tiny)"
            )
            raise ValueError(
                f"model '{spec.name}' is a {spec.task!r} model and task '{self.task.name}' "
                f"{'does not train' if diffusion_model else 'trains'} diffusion models; {hint}"
            )
        if isinstance(self.task, DiffusionTask):
            cond = getattr(generator, "cond_channels", None)
            if cond != self.task.cond_channels:
                kinds = {3: "a low-resolution image", 4: "a masked image and its mask", 0: "nothing"}
                raise ValueError(
                    f"task '{self.task.name}' trains a model conditioned on {kinds[self.task.cond_channels]} "
                    f"(cond_channels={self.task.cond_channels}); model '{spec.name}' has cond_channels={cond}"
                )
        if pair_kind(self.task) == "sr" and spec.scale != self.task.scale:
            raise ValueError(
                f"model '{spec.name}' upscales by {spec.scale}, but task.scale is {self.task.scale}; "
                f"set model.args.scale or task.scale"
            )
        if self.task.name == "inpaint" and "mask" not in spec.inputs:
            raise ValueError(
                f"task 'inpaint' needs a model that takes a mask; '{spec.name}' takes {spec.inputs}"
            )

    @staticmethod
    def _tracker(name: str | None) -> list[str] | None:
        """``auto``: tensorboard when installed, plus wandb when installed and configured
        (``WANDB_API_KEY`` or ``WANDB_MODE`` set, so a run never stops at a login prompt)."""
        import importlib.util

        if name in (None, "none", "no"):
            return None
        if name != "auto":
            return [part.strip() for part in name.split(",") if part.strip()]
        found = []
        if importlib.util.find_spec("tensorboard") is not None:
            found.append("tensorboard")
        wandb_ready = os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE")
        if importlib.util.find_spec("wandb") is not None and wandb_ready:
            found.append("wandb")
        return found or None

    def _dataset(self):
        if self.task.modality == "audio":
            return self._repeat_to_fill(self._audio_dataset())
        from restore.data import CleanImageFolder, sample_images_dir

        dc = self.config.data
        root = dc.train if dc.train is not None else sample_images_dir()
        dataset = CleanImageFolder(
            root,
            dc.patch_size,
            scale=self.task.scale,
            seed=self.config.train.seed,
            on_error=dc.on_error,
            repeat=dc.repeat,
            cache=dc.cache,
            recursive=dc.recursive,
        )
        return self._repeat_to_fill(dataset)

    def _audio_dataset(self):
        from restore.data.audio import SpeechNoiseDataset

        dc = self.config.data
        return SpeechNoiseDataset(
            dc.train,
            dc.noise,
            sample_rate=dc.sample_rate,
            segment_seconds=dc.segment_seconds,
            seed=self.config.train.seed,
            repeat=dc.repeat,
            cache=dc.cache,
            on_error=dc.on_error,
            recursive=dc.recursive,
        )

    def _repeat_to_fill(self, dataset):
        """A small folder (the bundled samples) is repeated so that every process gets whole batches."""
        from accelerate.state import PartialState

        dc = self.config.data
        needed = dc.batch_size * PartialState().num_processes
        if len(dataset) < needed:
            dataset.repeat = dc.repeat * math.ceil(needed / len(dataset))
        return dataset

    def _once(self, what: str, model: nn.Module, make):
        """``make(model)`` computed once per model: accelerate's ``unwrap_model`` and walking the module
        tree cost about 0.2-0.5 ms each, which a per-step call would pay every step."""
        key = (what, id(model))
        if key not in self._lookups:
            self._lookups[key] = make(model)
        return self._lookups[key]

    def _unwrap(self, model: nn.Module) -> nn.Module:
        """The plain module inside accelerate's wrappers (DDP, compile)."""
        unwrap = self.accelerator.unwrap_model
        return self._once("unwrap", model, lambda m: unwrap(m, keep_torch_compile=False))

    def _parameters(self, model: nn.Module) -> list[nn.Parameter]:
        return self._once("parameters", model, lambda m: list(m.parameters()))

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/checkpoint-<step>`` atomically; returns it (on the main process)."""
        acc = self.accelerator
        root = self.output_dir / "checkpoints"
        partial = checkpoints.partial_dir(root, self.step, "tmp")
        if acc.is_main_process:
            import shutil

            shutil.rmtree(partial, ignore_errors=True)
            root.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        acc.save_state(str(partial), safe_serialization=True)
        acc.wait_for_everyone()  # every rank's files (random_states_<rank>.pkl) are in before the rename
        final = None
        if acc.is_main_process:
            from safetensors.torch import save_file

            state = {"step": self.step, "skipped_steps": self.skipped_steps, "seconds": self.seconds}
            state["scheduler_g"] = self.sched_g.state_dict()
            if self.opt_d is not None:
                state["scheduler_d"] = self.sched_d.state_dict()
            (partial / STATE_FILE).write_text(json.dumps(state))
            if self.ema is not None:
                tensors = {k: v.detach().contiguous() for k, v in self.ema.module.state_dict().items()}
                tensors["__updates__"] = self.ema.updates.reshape(1)
                save_file(tensors, str(partial / EMA_FILE))
            final = checkpoints.finalize(partial, root, self.step)
            checkpoints.prune_checkpoints(root, self.config.output.keep)
        acc.wait_for_everyone()
        return final

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore models, optimisers, RNG states, schedulers, EMA and the step from a checkpoint folder."""
        from safetensors.torch import load_file

        path = Path(path)
        state_file = path / STATE_FILE
        if not state_file.is_file():
            raise FileNotFoundError(f"'{path}' is not a complete checkpoint (no {STATE_FILE})")
        self.accelerator.load_state(str(path))
        state = json.loads(state_file.read_text())
        self.step = int(state["step"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self._seconds_before = float(state.get("seconds", 0.0))
        self._started = time.perf_counter()
        self.sched_g.load_state_dict(state["scheduler_g"])
        if self.opt_d is not None and "scheduler_d" in state:
            self.sched_d.load_state_dict(state["scheduler_d"])
        if self.ema is not None:
            tensors = load_file(str(path / EMA_FILE), device=str(self.accelerator.device))
            updates = tensors.pop("__updates__")
            self.ema.module.load_state_dict(tensors)
            self.ema.updates.fill_(int(updates[0]))

    # ------------------------------------------------------------------ one iteration

    def _adversarial_values(self, pred: Tensor, pair: dict[str, Tensor]) -> dict[str, Any]:
        """D's outputs on pred (with gradient to pred) and on target (without), D frozen and unwrapped."""
        disc = self._unwrap(self.discriminator)
        condition = self.task.condition(pair) if self.config.discriminator.conditional else None
        disc.requires_grad_(False)
        fake_logits, fake_features = _discriminator_outputs(disc, pred, condition, self.d_features)
        with torch.no_grad():
            real_logits, real_features = _discriminator_outputs(
                disc, pair["target"], condition, self.d_features
            )
        return {
            "fake_logits": fake_logits,
            "real_logits": real_logits,
            "fake_features": fake_features,
            "real_features": real_features,
        }

    def _discriminator_loss(self, pred: Tensor, pair: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        disc = self.discriminator
        self._unwrap(disc).requires_grad_(True)
        condition = self.task.condition(pair) if self.config.discriminator.conditional else None
        real = pair["target"].detach()
        if self.r1_real:
            real = real.clone().requires_grad_(True)
        fake = pred.detach()
        # separate passes, as BasicSR (batch-norm statistics of real and fake are not mixed)
        real_logits, real_features = _discriminator_outputs(disc, real, condition, self.d_features)
        fake_logits, fake_features = _discriminator_outputs(disc, fake, condition, self.d_features)
        return self.d_loss(
            fake_logits=fake_logits,
            real_logits=real_logits,
            fake_features=fake_features,
            real_features=real_features,
            real=real,
            fake=fake,
            discriminator=self._unwrap(disc),
            grad_scaler=self.accelerator.scaler,
        )

    def _grad_norm(self, model: nn.Module, optimizer, clip: float | None) -> Tensor:
        """Total gradient norm (after unscaling), clipping to ``clip`` when set."""
        acc = self.accelerator
        if clip is not None:
            return torch.as_tensor(acc.clip_grad_norm_(self._parameters(model), clip))
        params = [p for p in self._parameters(model) if p.grad is not None]
        acc.unscale_gradients(optimizer)
        if not params:
            return torch.zeros(())
        return torch.nn.utils.get_total_norm([p.grad for p in params])

    def _optimizer_step(self, model, optimizer, scheduler, clip) -> bool:
        """Step if the gradients are finite; returns whether the step was taken."""
        norm = self._grad_norm(model, optimizer, clip)
        finite = bool(torch.isfinite(norm))
        if finite or self.accelerator.scaler is not None:
            optimizer.step()  # fp16: GradScaler skips non-finite steps itself and lowers the scale
        taken = finite and not self.accelerator.optimizer_step_was_skipped
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return taken

    def _buffer_snapshot(self, model: nn.Module | None) -> list[tuple[Tensor, Tensor]]:
        """``(buffer, copy)`` for a model's buffers (batch-norm statistics), to undo a skipped step."""
        if model is None:
            return []
        buffers = self._once("buffers", model, lambda m: list(self._unwrap(m).buffers()))
        return [(b, b.detach().clone()) for b in buffers]

    @staticmethod
    def _restore_buffers(snapshot: list[tuple[Tensor, Tensor]]) -> None:
        with torch.no_grad():
            for buffer, saved in snapshot:
                buffer.copy_(saved)

    def train_step(self, batch: dict[str, Any]) -> dict[str, float] | None:
        """One micro-batch; returns the logged terms when an optimiser step happened, else None."""
        acc = self.accelerator
        cfg = self.config
        models_ = (
            (self.generator, self.discriminator) if self.discriminator is not None else (self.generator,)
        )
        lr = self.opt_g.param_groups[0]["lr"]  # the rate this step uses (read before the scheduler moves it)
        if self._snapshots is None:  # the first micro-batch of an optimiser step
            self._snapshots = (
                self._buffer_snapshot(self.generator),
                self._buffer_snapshot(self.discriminator),
            )
        with acc.accumulate(*models_):
            pair = self.task.make_pair(batch, acc.device)
            if cfg.train.channels_last and self.task.modality == "image":
                pair = {
                    k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v
                    for k, v in pair.items()
                }
            with acc.autocast():
                pred = self.task.forward(self.generator, pair)
                values: dict[str, Any] = {"input": pair["input"], "mask": pair.get("mask")}
                # what the task's own losses take (a diffusion task: the denoiser output and target)
                values.update({k: pair[k] for k in getattr(self.task, "loss_inputs", ()) if k in pair})
                if pair.get("mask") is not None:
                    values["known"] = 1.0 - pair["mask"]
                if self.g_adversarial:
                    values.update(self._adversarial_values(pred, pair))
                g_total, g_terms = self.g_loss(pred, pair["target"], **values)
            acc.backward(g_total)
            logs = {f"g/{k}": v for k, v in g_terms.items()}
            logs["g/total"] = g_total.detach()
            stepped = None
            if acc.sync_gradients:
                stepped = self._optimizer_step(
                    self.generator, self.opt_g, self.sched_g, cfg.train.clip_grad_norm
                )
                if not stepped:
                    self._restore_buffers(self._snapshots[0])
                elif self.ema is not None:
                    self.ema.update(self._unwrap(self.generator))

            dc = cfg.discriminator
            if (
                self.discriminator is not None
                and self.step >= dc.start_step
                and self.step % dc.update_every == 0
            ):
                with acc.autocast():
                    d_total, d_terms = self._discriminator_loss(pred, pair)
                acc.backward(d_total)
                logs.update({f"d/{k}": v for k, v in d_terms.items()})
                logs["d/total"] = d_total.detach()
                if acc.sync_gradients:
                    d_stepped = self._optimizer_step(
                        self.discriminator, self.opt_d, self.sched_d, dc.clip_grad_norm
                    )
                    if not d_stepped:
                        self._restore_buffers(self._snapshots[1])
                    stepped = stepped and d_stepped
            elif self.discriminator is not None and acc.sync_gradients:
                with warnings.catch_warnings():  # D's schedule follows the global step while D waits
                    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                    self.sched_d.step()

        if stepped is None:
            return None
        self._snapshots = None
        self.step += 1
        if stepped:
            self._bad_in_a_row = 0
        else:
            self.skipped_steps += 1
            self._bad_in_a_row += 1
            acc.print(
                f"step {self.step}: non-finite loss or gradient, step skipped ({self.skipped_steps} so far)"
            )
            limit = cfg.train.max_bad_steps
            if acc.scaler is not None:
                limit = max(limit, 30)  # fp16 loss-scale backoff skips a few steps by design
            if self._bad_in_a_row >= limit:
                raise NonFiniteLossError(
                    f"{self._bad_in_a_row} consecutive steps had non-finite losses or gradients (last at "
                    f"step {self.step}; terms {_as_floats(logs)}). Lower train.lr, set "
                    "train.clip_grad_norm, or use train.mixed_precision bf16/no."
                )
        logs["lr"] = lr
        return _as_floats(logs)

    # ------------------------------------------------------------------ validation and logging

    def validate(self) -> dict[str, float]:
        """Metrics of the EMA (or raw) generator on the validation pairs; writes samples."""
        acc = self.accelerator
        metrics: dict[str, float] = {}
        if acc.is_main_process:
            vc = self.config.validation
            model = self.ema.module if (self.ema is not None and vc.use_ema) else self._unwrap(self.generator)
            if self.task.modality == "audio":
                metrics = self._validate_audio(model)
            else:
                metrics = self._validate_images(model)
            self._log({f"val/{k}": v for k, v in metrics.items()})
        acc.wait_for_everyone()
        return metrics

    def _validate_images(self, model: nn.Module) -> dict[str, float]:
        acc = self.accelerator
        vc = self.config.validation
        if self.validation_pairs is None:
            self.validation_pairs = build_validation_set(vc, self.task, self.spec.size_multiple)
        metrics, predictions = evaluate(
            model, self.validation_pairs, self.task, acc.device, autocast=acc.autocast, use_lpips=vc.lpips
        )
        if vc.samples:
            from restore.io import write_image

            grid = sample_grid(self.validation_pairs, predictions, vc.samples)
            samples_dir = self.output_dir / "samples"
            samples_dir.mkdir(parents=True, exist_ok=True)
            write_image(samples_dir / f"step-{self.step:07d}.png", grid)
            self._log_images(grid)
        return metrics

    def _validate_audio(self, model: nn.Module) -> dict[str, float]:
        from .audio_validation import build_audio_validation_set, evaluate_audio, write_audio_samples

        acc = self.accelerator
        vc = self.config.validation
        if self.validation_pairs is None:
            self.validation_pairs = build_audio_validation_set(vc, self.task)
        metrics, predictions = evaluate_audio(
            model, self.validation_pairs, self.task, acc.device, autocast=acc.autocast
        )
        if vc.samples:
            folder = self.output_dir / "samples" / f"step-{self.step:07d}"
            written = write_audio_samples(
                folder, self.validation_pairs, predictions, vc.samples, self.task.sample_rate
            )
            for tracker in acc.trackers:
                if tracker.name == "tensorboard":
                    for name, clip in written:
                        tracker.writer.add_audio(name, clip, self.step, sample_rate=self.task.sample_rate)
        return metrics

    def _log_images(self, grid: Tensor) -> None:
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_image("samples", grid, self.step)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds this run has trained, across resumes."""
        return self._seconds_before + time.perf_counter() - self._started

    def _log(self, values: dict[str, float]) -> None:
        self.accelerator.log(values, step=self.step)
        if self.accelerator.is_main_process:
            with open(self._log_file, "a") as f:
                record = {"step": self.step, **values, "seconds": round(self.seconds, 2), "time": time.time()}
                f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ the loop

    def train(self) -> TrainResult:
        """Train to ``train.steps`` (resuming when ``output.resume`` says so); returns a TrainResult."""
        from tqdm.auto import tqdm

        acc = self.accelerator
        cfg = self.config
        start = time.perf_counter()
        resume = checkpoints.resolve_resume(cfg.output.resume, self.output_dir / "checkpoints")
        if resume is not None:
            self.load_checkpoint(resume)
            acc.print(f"resumed from {resume} at step {self.step}")
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.output_dir / "config.yaml")
        if acc.trackers == [] and acc.log_with:
            acc.init_trackers("restore", config=_flat(config_to_dict(cfg)))

        ga = cfg.train.gradient_accumulation_steps
        per_epoch = len(self.loader)
        consumed = self.step * ga
        epoch, skip = divmod(consumed, per_epoch)
        progress = tqdm(
            total=cfg.train.steps,
            initial=self.step,
            disable=not (cfg.output.progress and acc.is_local_main_process),
            dynamic_ncols=True,
            desc=cfg.output.dir,
        )
        metrics: dict[str, float] = {}
        while self.step < cfg.train.steps:
            self.sampler.set_epoch(epoch)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            self.loader.set_epoch(epoch)
            batches = acc.skip_first_batches(self.loader, skip) if skip else self.loader
            for batch in batches:
                logs = self.train_step(batch)
                if logs is None:
                    continue
                progress.update(1)
                if self.step % cfg.output.log_every == 0 or self.step == cfg.train.steps:
                    progress.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in logs.items() if k != "lr"})
                    self._log(logs)
                if cfg.validation.every and self.step % cfg.validation.every == 0:
                    metrics = self.validate()
                if cfg.output.save_every and self.step % cfg.output.save_every == 0:
                    self.save_checkpoint()
                if self.step >= cfg.train.steps:
                    break
            epoch, skip = epoch + 1, 0
        progress.close()
        if not (cfg.validation.every and self.step % cfg.validation.every == 0):
            metrics = self.validate()
        if not (cfg.output.save_every and self.step % cfg.output.save_every == 0):
            self.save_checkpoint()
        weights = self.export()
        # not acc.end_training(): it destroys the process group, and a recipe may train a second
        # stage in this process (sr_gan after its PSNR stage)
        for tracker in acc.trackers:
            tracker.finish()
        return TrainResult(
            self.step, self.output_dir, weights, metrics, self.skipped_steps, time.perf_counter() - start
        )

    def export(self, path: str | Path | None = None) -> Path | None:
        """Save the generator (its EMA when there is one) as ``model.safetensors``; main process only."""
        import restore.models as models

        acc = self.accelerator
        acc.wait_for_everyone()
        path = Path(path) if path is not None else self.output_dir / "model.safetensors"
        if acc.is_main_process:
            model = self.ema.module if self.ema is not None else self._unwrap(self.generator)
            models.save(model, path)
        acc.wait_for_everyone()  # other ranks may load it next (sr_gan's second stage)
        return path if acc.is_main_process else None


def _as_floats(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config for trackers (values that are not scalars become strings)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[name] = value if value is not None else "none"
        else:
            out[name] = str(value)
    return out
