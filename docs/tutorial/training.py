"""The training code under test: a small PyTorch classifier, a
gradient-accumulation loop and a data-parallel step."""

import copy

import torch
from torch import nn
from torch.nn.functional import cross_entropy


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def make_batch(size=8):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(size, 4, generator=gen)
    return x, torch.randint(0, 3, (size,), generator=gen)


def with_params(model, params):
    """A copy of the model holding params (the checkers pass numpy arrays)."""
    net = copy.deepcopy(model)
    net.load_state_dict({k: torch.as_tensor(v) for k, v in params.items()})
    return net


def grads(net):
    return {name: p.grad.numpy() for name, p in net.named_parameters()}


def accumulate(model, params, microbatches):
    """Accumulation done right: each micro-batch's summed loss, divided
    once by the number of examples in the whole batch."""
    net = with_params(model, params)
    total = sum(len(x) for x, _ in microbatches)
    for x, y in microbatches:
        out = net(torch.as_tensor(x))
        loss = cross_entropy(out, torch.as_tensor(y), reduction="sum")
        (loss / total).backward()
    return grads(net)


def ddp_step(params, x, y):
    """One step on this rank: DistributedDataParallel averages the
    gradients of the ranks' mean losses. Defined at module level, so the
    worker processes can import it."""
    net = nn.parallel.DistributedDataParallel(with_params(make_model(), params))
    cross_entropy(net(torch.as_tensor(x)), torch.as_tensor(y)).backward()
    return {k.removeprefix("module."): g for k, g in grads(net).items()}
