"""PyTorch adapter: a module and a loss as the checkers' ``loss_fn``, ``grad_fn`` and ``params``.

>>> import torch, gradcheck
>>> from gradcheck.torch import functions
>>> _ = torch.manual_seed(0)
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
>>> loss_fn, grad_fn, params = functions(model, torch.nn.CrossEntropyLoss())
>>> sorted(params)
['0.bias', '0.weight', '2.bias', '2.weight']
>>> x, y = torch.randn(6, 3), torch.tensor([0, 1, 1, 0, 1, 0])
>>> gradcheck.check_gradient(loss_fn, grad_fn, params, x, y).holds
True
>>> gradcheck.infer_reduction(grad_fn, params, x, y)
'mean'

What the three are:

- ``params``: a dict of numpy arrays, one per trainable parameter, keyed by
  the names ``model.named_parameters()`` gives (``'0.weight'``,
  ``'layer1.bias'``), in the parameters' own dtype. A failure names an entry
  as ``params['0.weight'][2, 1]``. Frozen parameters (``requires_grad=False``)
  are not in it: they keep the module's values.
- ``grad_fn(params, *batch)``: the gradient the model's own backward pass
  computes (``torch.autograd.grad`` through the module itself, with its
  hooks, custom autograd functions and dtype), as a dict like ``params``.
  A float32 model returns a float32 gradient: that is what is checked.
- ``loss_fn(params, *batch)``: the loss computed by a float64 copy of the
  module and of the loss (``dtype=``), so finite differences of a float32
  model have float64 resolution. ``dtype=None`` computes it with the module
  itself, in its own dtype.

The batch: tensors or numpy arrays, examples on axis 0. By default the first
is the model's input and the rest go to the loss:
``loss(model(batch[0]), *batch[1:])``. Anything else (several inputs, a
mask, a transform of the output) is a ``forward(model, loss, *batch)``
returning the scalar loss, e.g.
``forward=lambda m, loss, x, y: loss(torch.log_softmax(m(x), dim=1), y)``.
It must call the ``m`` and ``loss`` it is given, not the ones it was built
from: ``loss_fn`` hands it the float64 copies.
Floating batch arrays are cast to the dtype the model runs in (float64 for
``loss_fn``), integer ones to int64 (class indices); bool ones stay bool.

The model's state is the user's and stays so: its parameters, their
``.grad``, its buffers and its ``train()``/``eval()`` flags are what they were
after every call, and no global setting changes (grad mode, default dtype,
the random number generator). Each call runs in the mode the model is in at
that moment: in ``eval()`` mode, batch normalization uses the running
statistics; in ``train()`` mode it uses the batch's statistics, which mixes
the examples, so ``check_reduction`` rightly reports that the gradient is
not a mean of per-example gradients. Running statistics never drift while
checking: each call starts from the model's buffers, and what a forward
pass writes into them is discarded. Random layers (dropout) draw the same
numbers on every call (from ``seed``), so the loss is one function of the
parameters, and the caller's random state is left as it was.
"""

from __future__ import annotations

import abc
import contextlib
import copy
from typing import Any, Callable, Iterator

import numpy as np
import torch

from . import _args
from ._calls import is_scratch
from .errors import GradcheckUsageError

__all__ = ["functions"]

Forward = Callable[..., Any]


def _default_forward(model: torch.nn.Module, loss: Callable[..., Any], x: Any, *rest: Any) -> Any:
    return loss(model(x), *rest)


def functions(model: torch.nn.Module, loss: Callable[..., Any], *, dtype: torch.dtype | None = torch.float64,
              forward: Forward | None = None, seed: int = 0
              ) -> tuple[Callable[..., Any], Callable[..., Any], dict[str, np.ndarray]]:
    """``(loss_fn, grad_fn, params)`` for ``model`` and ``loss``: the contract
    every checker takes (see the module's documentation).

    ``loss``: a loss module (``torch.nn.CrossEntropyLoss()``) or a function of
    ``(output, *targets)`` returning a scalar tensor. ``dtype``: the dtype of
    the copy ``loss_fn`` evaluates (None: the model itself). ``forward``:
    ``forward(model, loss, *batch) -> scalar loss`` when the default
    ``loss(model(batch[0]), *batch[1:])`` does not fit. ``seed``: what random
    layers draw from, the same on every call.

    >>> import torch
    >>> model = torch.nn.Linear(2, 1).float()
    >>> loss_fn, grad_fn, params = functions(model, torch.nn.MSELoss(reduction="sum"))
    >>> params["weight"].dtype, params["bias"].shape
    (dtype('float32'), (1,))
    >>> x, y = torch.ones(3, 2), torch.zeros(3, 1)
    >>> type(loss_fn(params, x, y)).__name__, grad_fn(params, x, y)["weight"].dtype
    ('float64', dtype('float32'))
    """
    _require_module(model)
    _require_loss(loss)
    forward = _require_forward(forward)
    dtype = _require_dtype(dtype)
    seed = _args.seed(seed)
    trainable = _trainable(model)
    live = _Live(model, loss, forward, trainable, seed)
    ref = live if dtype is None else _Reference(model, loss, forward, trainable, seed, dtype)

    def loss_fn(params: dict[str, Any], *batch: Any) -> np.floating:
        return ref.value(params, batch)

    def grad_fn(params: dict[str, Any], *batch: Any) -> dict[str, np.ndarray]:
        return live.gradient(params, batch)

    params = {name: p.detach().cpu().numpy().copy() for name, p in trainable.items()}
    return loss_fn, grad_fn, params


# ---------------------------------------------------------------- arguments

def _require_module(model: Any) -> None:
    if isinstance(model, torch.nn.Module):
        return
    if isinstance(model, type) and issubclass(model, torch.nn.Module):
        raise GradcheckUsageError(f"model={model.__name__} is a class; pass an instance, "
                                  f"e.g. model={model.__name__}(...)")
    raise GradcheckUsageError(f"model={_short(model)} is not a torch.nn.Module; pass the module "
                              f"(for a plain function, write loss_fn and grad_fn and call the checkers directly)")


def _require_loss(loss: Any) -> None:
    if isinstance(loss, type):
        # A class is callable, but calling it builds a module instead of a loss.
        raise GradcheckUsageError(f"loss={loss.__name__} is a class; pass an instance, e.g. "
                                  f"loss={loss.__name__}()")
    if not callable(loss):
        raise GradcheckUsageError(f"loss={_short(loss)} is not callable; pass a loss module such as "
                                  f"torch.nn.CrossEntropyLoss() or a function of (output, target)")


def _require_forward(forward: Any) -> Forward:
    if forward is None:
        return _default_forward
    if not callable(forward):
        raise GradcheckUsageError(f"forward={_short(forward)} is not callable; pass a function "
                                  f"forward(model, loss, *batch) returning the scalar loss, or None")
    return forward


def _require_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        return dtype
    raise GradcheckUsageError(f"dtype={dtype!r} is not a torch floating dtype; pass e.g. "
                              f"dtype=torch.float64 (the default), or dtype=None to take finite "
                              f"differences of the model in its own dtype")


def _trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not trainable:
        raise GradcheckUsageError(f"model={type(model).__name__} has no parameter with requires_grad=True; "
                                  f"there is nothing to check")
    for name, p in trainable.items():
        if p.dtype not in (torch.float16, torch.float32, torch.float64):
            raise GradcheckUsageError(f"model parameter {name!r} has dtype {p.dtype}, which numpy cannot "
                                      f"hold; convert the model with .float() or .double() to check it")
    return trainable


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- running the model

class _Runner(abc.ABC):
    """Runs ``forward(model, loss, *batch)`` at given parameter values."""

    copies: bool  # whether the values handed in must be copied first

    def __init__(self, model: torch.nn.Module, loss: Callable[..., Any], forward: Forward,
                 trainable: dict[str, torch.nn.Parameter], seed: int, dtype: torch.dtype) -> None:
        self.model, self.loss, self.forward = model, loss, forward
        self.trainable, self.seed, self.dtype = trainable, seed, dtype
        self.device = next(iter(trainable.values())).device

    def value(self, params: Any, batch: tuple[Any, ...]) -> np.floating:
        with torch.no_grad():
            out = self._loss(params, batch)
        return out.detach().cpu().numpy().reshape(())[()]

    def gradient(self, params: Any, batch: tuple[Any, ...]) -> dict[str, np.ndarray]:
        with torch.enable_grad():
            out = self._loss(params, batch)
            tensors = list(self.trainable.values())
            # A loss cut off from the parameters (a .detach() in forward) has a
            # zero gradient by backpropagation; finite differences will say
            # whether that is right.
            grads = torch.autograd.grad(out, tensors, allow_unused=True) if out.requires_grad \
                else [None] * len(tensors)
        return {name: _numpy_grad(g, p) for (name, p), g in zip(self.trainable.items(), grads)}

    def _loss(self, params: Any, batch: tuple[Any, ...]) -> torch.Tensor:
        values, lent = _param_tensors(params, self.trainable, copy=self.copies)
        inputs = [_batch_tensor(b, i, self.dtype, self.device) for i, b in enumerate(batch)]
        with self._state(values, lent), _fixed_random(self.seed, self.device):
            try:
                out = self.forward(self.model, self.loss, *inputs)
            except Exception as e:
                _explain_single_example(e, self.model, inputs)
                raise
        return _scalar(out)

    @abc.abstractmethod
    def _state(self, values: dict[str, torch.Tensor], lent: set[str]) -> contextlib.AbstractContextManager:
        """A context in which the module computes at ``values`` (those named
        in ``lent`` are gradcheck's scratch memory, see _calls.scratch)."""


class _Live(_Runner):
    """The user's module itself: the backward pass under test, in its own dtype."""

    copies = True  # the module computes on the values themselves

    def __init__(self, model: torch.nn.Module, loss: Callable[..., Any], forward: Forward,
                 trainable: dict[str, torch.nn.Parameter], seed: int) -> None:
        super().__init__(model, loss, forward, trainable, seed, next(iter(trainable.values())).dtype)

    @contextlib.contextmanager
    def _state(self, values: dict[str, torch.Tensor], lent: set[str]) -> Iterator[None]:
        # The module runs on its own Parameter objects, not on substitutes
        # (as torch.func.functional_call would): hooks registered on them,
        # tied weights and modules holding references to them (RNNs) all take
        # part. Their storage is swapped for the values and swapped back, so
        # nothing is written into the user's tensors, and no version counter moves.
        grads = {name: p.grad for name, p in self.trainable.items()}
        saved = {name: p.data for name, p in self.trainable.items()}
        buffers = [(b, b.data) for b in self.model.buffers()] + _loss_buffers(self.loss)
        flags = _flags(self.model, self.loss)
        try:
            for name, p in self.trainable.items():
                p.data = values[name]
            for b, data in buffers:
                b.data = data.clone()  # batch norm's running statistics update these in place
            yield
        finally:
            for name, p in self.trainable.items():
                p.data = saved[name]
                p.grad = grads[name]
            for b, data in buffers:
                b.data = data
            _set_flags(flags)


class _Reference(_Runner):
    """A private copy of the module and loss in ``dtype``, kept in step with
    the user's module: its mode, buffers and frozen parameters are read from
    it on every call."""

    copies = False  # the values are copied into the copy's own parameters

    def __init__(self, model: torch.nn.Module, loss: Callable[..., Any], forward: Forward,
                 trainable: dict[str, torch.nn.Parameter], seed: int, dtype: torch.dtype) -> None:
        twin, twin_loss = _copies(model, loss, dtype)
        own = dict(twin.named_parameters())
        super().__init__(twin, twin_loss, forward, {name: own[name] for name in trainable}, seed, dtype)
        self.state_pairs = list(_paired_state(twin, model))
        self.module_pairs = [(mine, theirs) for (mine, _), (theirs, _) in
                             zip(_flags(twin, twin_loss), _flags(model, loss))]

    @contextlib.contextmanager
    def _state(self, values: dict[str, torch.Tensor], lent: set[str]) -> Iterator[None]:
        with torch.no_grad():
            for mine, theirs in self.state_pairs:
                mine.copy_(theirs)
            for name, p in self.trainable.items():
                if name not in lent:
                    # Copied, not aliased: a forward pass may write into its
                    # own weights (an Embedding with max_norm renormalizes them).
                    p.copy_(values[name])
        for mine, theirs in self.module_pairs:
            mine.training = theirs.training
        # gradcheck's scratch memory is computed on where it lies: a write
        # into it harms no one, and copying it would cost a pass over it.
        own = {name: self.trainable[name].data for name in lent}
        try:
            for name in lent:
                self.trainable[name].data = values[name]
            yield
        finally:
            for name, data in own.items():
                self.trainable[name].data = data


def _explain_single_example(e: Exception, model: torch.nn.Module, inputs: list[torch.Tensor]) -> None:
    """Add a note when a model in train() mode fails on one example: the
    reduction checkers call grad_fn on single examples, which batch
    normalization in training mode cannot run."""
    if not (model.training and inputs and inputs[0].dim() > 0 and len(inputs[0]) == 1):
        return
    if hasattr(e, "add_note"):  # Python 3.11+
        e.add_note("[gradcheck] the model, in train() mode, failed on a batch of 1 example: a layer with "
                   "batch statistics (batch normalization) cannot run one example alone, and its gradient is "
                   "not a mean or sum of per-example gradients, so check_reduction and check_accumulation do "
                   "not apply; call model.eval() to check it with its running statistics")


def _copies(model: torch.nn.Module, loss: Callable[..., Any], dtype: torch.dtype
            ) -> tuple[torch.nn.Module, Callable[..., Any]]:
    try:
        twin = copy.deepcopy(model).to(dtype)
        twin_loss = copy.deepcopy(loss).to(dtype) if isinstance(loss, torch.nn.Module) else loss
    except Exception as e:  # a module holding something deepcopy cannot copy
        raise GradcheckUsageError(
            f"model={type(model).__name__} could not be copied in {dtype} for finite differences "
            f"({type(e).__name__}: {e}); pass dtype=None to take them on the model itself, in its own dtype"
        ) from e
    return twin, twin_loss


def _paired_state(mine: torch.nn.Module, theirs: torch.nn.Module) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Buffers and frozen parameters of the copy, with the user's module's
    (a module built by deepcopy names them alike)."""
    their_buffers = dict(theirs.named_buffers())
    for name, b in mine.named_buffers():
        yield b, their_buffers[name]
    their_params = dict(theirs.named_parameters())
    for name, p in mine.named_parameters():
        if not their_params[name].requires_grad:
            yield p, their_params[name]


def _loss_buffers(loss: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(b, b.data) for b in loss.buffers()] if isinstance(loss, torch.nn.Module) else []


def _flags(model: torch.nn.Module, loss: Any) -> list[tuple[torch.nn.Module, bool]]:
    modules = list(model.modules()) + (list(loss.modules()) if isinstance(loss, torch.nn.Module) else [])
    return [(m, m.training) for m in modules]


def _set_flags(flags: list[tuple[torch.nn.Module, bool]]) -> None:
    for m, on in flags:
        m.training = on


@contextlib.contextmanager
def _fixed_random(seed: int, device: torch.device) -> Iterator[None]:
    # Dropout must draw the same mask at every point finite differences
    # visit (and in the float64 copy as in the model), and the caller's
    # generator must not move. (torch.manual_seed would also seed every
    # accelerator, at a cost of milliseconds per call.)
    generators = [torch.default_generator]
    if device.type == "cuda":
        generators.append(torch.cuda.default_generators[device.index or 0])
    saved = [g.get_state() for g in generators]
    try:
        for g in generators:
            g.manual_seed(seed)
        yield
    finally:
        for g, state in zip(generators, saved):
            g.set_state(state)


# ---------------------------------------------------------------- values in and out

def _param_tensors(params: Any, trainable: dict[str, torch.nn.Parameter], *, copy: bool = True
                   ) -> tuple[dict[str, torch.Tensor], set[str]]:
    """The params as tensors: copies, never the caller's memory, unless
    ``copy`` is False for a caller that only reads them, or the memory is
    gradcheck's scratch (_calls.scratch) in the parameter's own dtype; and
    the names of those that are scratch, which the module may compute on
    where they lie."""
    if not isinstance(params, dict) or set(params) != set(trainable):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise GradcheckUsageError(f"params={_short(got)} does not match the model's trainable parameters "
                                  f"{_short(sorted(trainable))}; pass the params dict functions() returned "
                                  f"(or one with the same keys)")
    out, lent = {}, set()
    for name, p in trainable.items():
        value = _as_numpy(params[name])
        if value.shape != tuple(p.shape):
            raise GradcheckUsageError(f"params[{name!r}] has shape {value.shape}; the model's parameter "
                                      f"has shape {tuple(p.shape)}")
        own_dtype = p.dtype in (torch.float16, torch.float32, torch.float64) and value.dtype == _numpy_dtype(p.dtype)
        if is_scratch(params[name]) and own_dtype and value.flags.writeable and value.flags.c_contiguous \
                and p.device.type == "cpu":
            out[name] = torch.from_numpy(value)
            lent.add(name)
        elif copy or not value.flags.writeable or p.device.type != "cpu":
            out[name] = torch.tensor(value, dtype=p.dtype, device=p.device)
        else:
            out[name] = torch.from_numpy(np.ascontiguousarray(value))  # read once, by copy_
    return out, lent


def _batch_tensor(value: Any, i: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Always a copy: a module that works in place on its input (ReLU(inplace=True))
    # must not write into the caller's arrays.
    t = value.detach().clone() if torch.is_tensor(value) else torch.tensor(_as_numpy(value, f"batch[{i}]"))
    if t.is_floating_point():
        t = t.to(dtype)
    elif t.dtype != torch.bool and not t.is_complex():
        t = t.to(torch.int64)  # class indices must be int64
    return t.to(device)


def _as_numpy(value: Any, where: str = "params") -> np.ndarray:
    if torch.is_tensor(value):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as e:
        raise GradcheckUsageError(f"{where}={_short(value)} cannot be read as an array "
                                  f"({type(e).__name__}: {e}); pass tensors or numpy arrays") from e


def _scalar(out: Any) -> torch.Tensor:
    """The loss a forward pass returned: one floating number, as a tensor."""
    fix = "the loss must return one number as a tensor (a loss module with reduction='mean' or 'sum')"
    if not torch.is_tensor(out):
        raise GradcheckUsageError(f"loss returned a {type(out).__name__}, {_short(out)}; {fix}"
                                  f"{' (not .item(): keep the tensor)' if isinstance(out, float) else ''}")
    if out.numel() != 1:
        hint = " (reduction='none'? use 'mean' or 'sum')" if out.dim() == 1 else ""
        raise GradcheckUsageError(f"loss returned a tensor of shape {tuple(out.shape)}{hint}; {fix}")
    if not out.is_floating_point():
        raise GradcheckUsageError(f"loss returned a tensor of dtype {out.dtype}; {fix}")
    return out.reshape(())


def _numpy_grad(g: torch.Tensor | None, p: torch.Tensor) -> np.ndarray:
    # A parameter the loss does not use has no gradient from autograd; its
    # gradient is zero.
    if g is None:
        return np.zeros(tuple(p.shape), dtype=_numpy_dtype(p.dtype))
    a = g.detach().cpu().numpy()
    # A gradient autograd made for this call alone (contiguous, the whole of
    # a storage, not a view) is handed over as it is: at 10^6 entries a copy
    # is a pass per call. A view of anything (an expanded or split gradient)
    # is copied, so no two arrays handed out share memory.
    if g.device.type == "cpu" and g._base is None and g.is_contiguous() \
            and g.untyped_storage().nbytes() == g.numel() * g.element_size():
        return a
    return a.copy()


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return np.dtype({torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}[dtype])
