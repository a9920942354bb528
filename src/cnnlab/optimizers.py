"""Optimizers with Keras's names, defaults and update rules.

Each updates the parameters in place from their gradients. Its state (moments,
step count) can be read and restored, so training can stop and resume bit for
bit. The slots live where the parameters live (``xp = array_module(p)``): on a
GPU the whole update runs there, and :meth:`Optimizer.to_device` moves them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.backend import array_module, to_device, to_numpy
from cnnlab.errors import InvalidArgumentError
from cnnlab.schedules import LearningRateSchedule, check_number, get_schedule


class Optimizer:
    """Base class: ``step(params, grads)`` updates ``params`` in place.

    ``learning_rate`` is a number or a :mod:`cnnlab.schedules` schedule (or
    its config dict); with a schedule, each step first sets
    ``self.learning_rate = schedule(self.iterations)``.
    """

    slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float | LearningRateSchedule | dict[str, Any]) -> None:
        self.schedule: LearningRateSchedule | None = None
        if isinstance(learning_rate, (LearningRateSchedule, dict)):
            self.schedule = get_schedule(learning_rate)
            learning_rate = self.schedule(0)
        self.learning_rate = check_number(learning_rate, "learning_rate", type(self).__name__)
        self.iterations = 0
        self.slots: dict[str, list[Any]] = {}

    def _ensure_slots(self, params: list[Any]) -> None:
        if not self.slots or len(self.slots[self.slot_names[0]]) != len(params):
            self.slots = {s: [array_module(p).zeros_like(p) for p in params]
                          for s in self.slot_names}

    def to_device(self, device: str) -> None:
        """Move the slots to ``device`` (``"cpu"`` or ``"gpu"``), where the parameters go."""
        self.slots = {s: [to_device(a, device) for a in arrays] for s, arrays in self.slots.items()}

    def step(self, params: list[Any], grads: list[Any]) -> None:
        if self.schedule is not None:
            self.learning_rate = self.schedule(self.iterations)
        if self.slot_names:
            self._ensure_slots(params)
        self.iterations += 1
        self.begin_step(self.iterations)
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            self.update(i, p, g)

    def begin_step(self, t: int) -> None:
        """Per-step set-up before the updates of step ``t`` (1-based); none by default."""

    def update(self, i: int, p: Any, g: Any) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        rate = self.schedule.get_config() if self.schedule is not None else self.learning_rate
        return {"name": type(self).__name__, "learning_rate": rate}

    def get_state(self) -> dict[str, Any]:
        """Arrays keyed ``slot/index``, plus ``iterations``: what a checkpoint stores.

        The slots are returned where they live (a checkpoint copies them to the host)."""
        state: dict[str, Any] = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for s, arrays in self.slots.items():
            for i, a in enumerate(arrays):
                state[f"{s}/{i}"] = a
        return state

    def set_state(self, state: dict[str, Any], params: list[Any]) -> None:
        self.iterations = int(np.asarray(state["iterations"]).reshape(-1)[0])
        if self.slot_names:
            self.slots = {
                s: [_slot_like(state[f"{s}/{i}"], p) for i, p in enumerate(params)]
                for s in self.slot_names
            }


def _slot_like(value: Any, p: Any) -> Any:
    """A copy of ``value`` in ``p``'s dtype, on ``p``'s device."""
    xp = array_module(p)
    if xp is np:
        return np.array(to_numpy(value), dtype=p.dtype)
    return xp.array(to_device(value, "gpu"), dtype=p.dtype)


class SGD(Optimizer):
    """``v = momentum * v - lr * g``; ``p += v`` (Nesterov: ``p += momentum * v - lr * g``)."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(learning_rate)
        if not 0 <= momentum < 1:
            raise InvalidArgumentError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.slot_names = ("velocity",) if self.momentum else ()

    def update(self, i: int, p: Any, g: Any) -> None:
        lr = p.dtype.type(self.learning_rate)
        if not self.momentum:
            p -= lr * g
            return
        v = self.slots["velocity"][i]
        m = p.dtype.type(self.momentum)
        v *= m
        v -= lr * g
        if self.nesterov:
            p += m * v - lr * g
        else:
            p += v

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Kingma and Ba (2015), in Keras's form::

        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
        p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    """

    slot_names = ("m", "v")

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate)
        for name, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= b < 1:
                raise InvalidArgumentError(f"Adam: {name} must be in [0, 1), got {b!r}")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = check_number(epsilon, "epsilon", "Adam")

    def begin_step(self, t: int) -> None:
        self._lr_t = self.learning_rate * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)

    def update(self, i: int, p: Any, g: Any) -> None:
        f = p.dtype.type
        m, v = self.slots["m"][i], self.slots["v"][i]
        m *= f(self.beta_1)
        m += f(1 - self.beta_1) * g
        v *= f(self.beta_2)
        v += f(1 - self.beta_2) * (g * g)
        denom = array_module(v).sqrt(v)
        denom += f(self.epsilon)
        p -= f(self._lr_t) * m / denom

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), in Keras 3's form.

    Each step first decays every parameter by the (current) learning rate times
    ``weight_decay``, then takes the Adam step with the gradient, which does not
    include the decay::

        p -= lr * weight_decay * p
        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
        p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)

    That is Keras's order (``_apply_weight_decay`` before ``update_step``) and
    PyTorch's (``p *= 1 - lr * weight_decay``, then Adam). As in both, every
    trainable weight is decayed, biases included. The two differ only in where
    epsilon sits: PyTorch divides by ``sqrt(v / (1 - b2^t)) + eps``, Keras (and
    this) by ``sqrt(v) + eps`` before the bias correction, so Keras's epsilon
    equals PyTorch's times ``sqrt(1 - b2^t)``.

    The state (``m``, ``v``, step count) is Adam's, saved by checkpoints the same way.
    """

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon)
        self.weight_decay = check_number(weight_decay, "weight_decay", "AdamW", allow_zero=True)

    def update(self, i: int, p: Any, g: Any) -> None:
        p -= p * p.dtype.type(self.learning_rate * self.weight_decay)
        super().update(i, p, g)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weight_decay": self.weight_decay}


class RMSprop(Optimizer):
    """``a = rho a + (1 - rho) g^2``; ``p -= lr g / (sqrt(a) + eps)`` (optional momentum)."""

    slot_names = ("accumulator", "velocity")

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate)
        if not 0 <= rho < 1:
            raise InvalidArgumentError(f"RMSprop: rho must be in [0, 1), got {rho!r}")
        if not 0 <= momentum < 1:
            raise InvalidArgumentError(f"RMSprop: momentum must be in [0, 1), got {momentum!r}")
        self.rho, self.momentum = float(rho), float(momentum)
        self.epsilon = check_number(epsilon, "epsilon", "RMSprop")

    def update(self, i: int, p: Any, g: Any) -> None:
        f = p.dtype.type
        a = self.slots["accumulator"][i]
        a *= f(self.rho)
        a += f(1 - self.rho) * (g * g)
        step = f(self.learning_rate) * g / (array_module(a).sqrt(a) + f(self.epsilon))
        if self.momentum:
            v = self.slots["velocity"][i]
            v *= f(self.momentum)
            v += step
            p -= v
        else:
            p -= step

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Zeiler (2012): ``a = rho a + (1-rho) g^2``; ``d = sqrt(u + eps) / sqrt(a + eps) * g``;
    ``u = rho u + (1-rho) d^2``; ``p -= lr * d``."""

    slot_names = ("accumulated_grad", "accumulated_delta")

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.95,
                 epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate)
        if not 0 <= rho < 1:
            raise InvalidArgumentError(f"Adadelta: rho must be in [0, 1), got {rho!r}")
        self.rho = float(rho)
        self.epsilon = check_number(epsilon, "epsilon", "Adadelta")

    def update(self, i: int, p: Any, g: Any) -> None:
        f = p.dtype.type
        a, u = self.slots["accumulated_grad"][i], self.slots["accumulated_delta"][i]
        a *= f(self.rho)
        a += f(1 - self.rho) * (g * g)
        xp = array_module(u)
        d = xp.sqrt(u + f(self.epsilon)) / xp.sqrt(a + f(self.epsilon)) * g
        u *= f(self.rho)
        u += f(1 - self.rho) * (d * d)
        p -= f(self.learning_rate) * d

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adadelta": Adadelta,
}


def get_optimizer(spec: str | Optimizer | dict[str, Any], **kwargs: Any) -> Optimizer:
    """An optimizer from a name (``"adam"``), a config dict, or an instance."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, dict):
        cfg = dict(spec)
        name = cfg.pop("name", "")
        return get_optimizer(name, **cfg, **kwargs)
    key = str(spec).lower()
    if key not in OPTIMIZERS:
        raise InvalidArgumentError(
            f"unknown optimizer {spec!r}: expected one of {', '.join(sorted(OPTIMIZERS))}"
        )
    return OPTIMIZERS[key](**kwargs)
