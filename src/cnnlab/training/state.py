"""What a training run has done so far: the history and the resumable position."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class History:
    """What fit() returns: per-epoch metrics, as Keras's ``History``.

    ``history`` maps a metric name (``loss``, ``accuracy``, ``val_loss``,
    ``val_accuracy``, ``time``) to one value per epoch; ``epoch`` lists the
    epoch indices (from 0).
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))


@dataclass
class TrainState:
    """Where a run is: enough, with the weights and optimizer, to continue bit for bit.

    ``epoch`` and ``step`` count what is done; ``perm`` is the current epoch's
    shuffled order (``None`` between epochs or for streamed data); the sums
    give the epoch's running loss and accuracy; ``elapsed`` its seconds so far.
    """

    epoch: int = 0
    step: int = 0
    history: History = field(default_factory=History)
    perm: np.ndarray | None = None
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    elapsed: float = 0.0

    def start_epoch(self, perm: np.ndarray | None) -> None:
        self.perm = perm
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0

    def record(self, loss: float, correct: int, count: int) -> None:
        self.loss_sum += loss * count
        self.correct += correct
        self.seen += count

    def metrics(self) -> dict[str, float]:
        return {"loss": self.loss_sum / self.seen, "accuracy": self.correct / self.seen}

    def end_epoch(self, epoch: int) -> None:
        self.epoch, self.step, self.perm, self.elapsed = epoch + 1, 0, None, 0.0
