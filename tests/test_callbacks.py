"""Keras's callbacks (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, CSVLogger).

Most tests drive a callback through a scripted sequence of epoch logs on a
fake model whose one weight records the epoch it was set in, so every stop,
restore, save and reduction can be checked against Keras 3's rules worked out
by hand. A few run the real ``fit`` loop end to end.
"""

from __future__ import annotations

import csv
import math
import warnings

import numpy as np
import pytest

import cnnlab
from cnnlab.errors import InvalidArgumentError
from cnnlab.layers import Activation, Dense, Flatten
from cnnlab.training import (
    Callback,
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    ReduceLROnPlateau,
)


class FakeModel:
    """What the callbacks use of a model: weights, stop flag, optimizer, save."""

    def __init__(self, learning_rate: float = 0.1) -> None:
        self.w = np.zeros(2)
        self.stop_training = False
        self.optimizer = cnnlab.SGD(learning_rate)
        self.saved: list[str] = []

    def get_weights(self) -> list[np.ndarray]:
        return [self.w.copy()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.w[...] = weights[0]

    def save(self, path) -> None:
        self.saved.append(str(path))
        path.write_text(f"weights {self.w[0]:g}")


def run(callback: Callback, values: list[float], key: str = "val_loss",
        model: FakeModel | None = None, extra: dict | None = None) -> tuple[FakeModel, list]:
    """fit()'s order of hooks over ``values`` of ``logs[key]``; the weights hold the epoch.

    Returns the model and the logs of the epochs that ran.
    """
    model = model or FakeModel()
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    seen = []
    for epoch, value in enumerate(values):
        callback.on_epoch_begin(epoch)
        model.w[:] = epoch  # "training" this epoch
        logs = {"loss": 10.0 - epoch, "accuracy": 0.1 * epoch, **(extra or {})}
        if key is not None:
            logs[key] = value
        callback.on_epoch_end(epoch, logs)
        seen.append(logs)
        if model.stop_training:
            break
    callback.on_train_end()
    return model, seen


# --------------------------------------------------------------------------- EarlyStopping
def test_early_stopping_stops_after_patience_epochs_and_restores_the_best():
    es = EarlyStopping(patience=2, restore_best_weights=True)
    model, seen = run(es, [1.0, 0.8, 0.9, 0.85, 0.7, 0.6])
    # epoch 1 is the best; epochs 2 and 3 do not improve: wait reaches 2 at epoch 3
    assert len(seen) == 4
    assert es.stopped_epoch == 3 and model.stop_training
    assert es.best == 0.8 and es.best_epoch == 1 and es.wait == 2
    assert model.w[0] == 1  # the weights at the end of epoch 1


def test_early_stopping_without_restore_keeps_the_last_weights():
    es = EarlyStopping(patience=1)
    model, seen = run(es, [1.0, 1.2, 0.5])
    assert len(seen) == 2 and es.stopped_epoch == 1
    assert model.w[0] == 1


def test_patience_zero_stops_at_the_first_epoch_without_improvement():
    es = EarlyStopping()
    _, seen = run(es, [3.0, 2.0, 2.0, 1.0])
    assert len(seen) == 3 and es.stopped_epoch == 2
    # equal is not better: the comparison is strict
    _, seen = run(es, [1.0, 1.0])
    assert len(seen) == 2 and es.stopped_epoch == 1


def test_restore_best_weights_also_when_training_runs_every_epoch():
    """Keras 3 restores at the end of training whether or not it stopped early."""
    es = EarlyStopping(patience=10, restore_best_weights=True)
    model, seen = run(es, [1.0, 0.5, 0.7, 0.8])
    assert len(seen) == 4 and es.stopped_epoch == 0 and not model.stop_training
    assert model.w[0] == 1


def test_min_delta_is_an_absolute_margin_either_sign():
    for delta in (0.1, -0.1):
        es = EarlyStopping(min_delta=delta, patience=2, restore_best_weights=True)
        model, seen = run(es, [1.0, 0.95, 0.85, 0.8, 0.78])
        # 0.95 is not 0.1 below 1.0; 0.85 is (improvement); 0.8 and 0.78 are not below 0.75
        assert es.best == 0.85 and es.stopped_epoch == 4 and len(seen) == 5
        assert model.w[0] == 2


def test_accuracy_is_maximised_in_auto_mode():
    es = EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
    assert es.mode == "max"
    model, seen = run(es, [0.5, 0.6, 0.6, 0.55, 0.9], key="val_accuracy")
    assert es.stopped_epoch == 3 and len(seen) == 4 and model.w[0] == 1
    es = EarlyStopping(monitor="loss", mode="max")
    assert es.mode == "max"


def test_baseline_holds_the_wait_counter_until_beaten():
    # never beating the baseline 0.5: training lasts `patience` epochs, the best is restored
    es = EarlyStopping(patience=2, baseline=0.5, restore_best_weights=True)
    model, seen = run(es, [0.9, 0.95, 0.97, 0.99])
    assert es.stopped_epoch == 1 and len(seen) == 2 and model.w[0] == 0
    # beating it resets the counter as usual
    es = EarlyStopping(patience=2, baseline=0.5)
    _, seen = run(es, [0.9, 0.4, 0.45, 0.46, 0.3])
    assert es.stopped_epoch == 3 and len(seen) == 4


def test_start_from_epoch_skips_the_warm_up():
    es = EarlyStopping(patience=0, start_from_epoch=2, restore_best_weights=True)
    model, seen = run(es, [1.0, 2.0, 3.0, 4.0, 5.0])
    # epochs 0 and 1 are not watched: 3.0 is the first best, 4.0 stops at once
    assert es.stopped_epoch == 3 and len(seen) == 4 and es.best == 3.0
    assert model.w[0] == 2


def test_a_missing_monitor_warns_with_the_available_keys_and_never_stops():
    es = EarlyStopping(patience=0)
    with pytest.warns(UserWarning, match="`val_loss` which is not available. Available "
                      "metrics are: loss,accuracy"):
        model, seen = run(es, [1.0, 2.0, 3.0], key=None)
    assert len(seen) == 3 and not model.stop_training


def test_early_stopping_is_reusable_across_fits():
    es = EarlyStopping(patience=1, restore_best_weights=True)
    run(es, [1.0, 2.0])
    model, seen = run(es, [5.0, 4.0, 4.5])
    assert es.best == 4.0 and es.stopped_epoch == 2 and model.w[0] == 1


def test_monitor_direction_and_arguments_are_checked_early():
    with pytest.raises(InvalidArgumentError, match="mode='min' or mode='max'"):
        EarlyStopping(monitor="time")
    assert EarlyStopping(monitor="time", mode="min").mode == "min"
    with pytest.raises(InvalidArgumentError, match="mode must be"):
        EarlyStopping(mode="lowest")
    with pytest.raises(InvalidArgumentError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.raises(InvalidArgumentError, match="start_from_epoch"):
        EarlyStopping(start_from_epoch=1.5)


# --------------------------------------------------------------------------- a real fit
def tiny_model(seed: int = 0) -> cnnlab.Sequential:
    model = cnnlab.Sequential([Flatten(), Dense(3), Activation("softmax")],
                              input_shape=(4, 4, 1), seed=seed)
    model.compile(optimizer=cnnlab.SGD(0.1))
    return model


def tiny_data(n: int = 24, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 4, 4, 1), dtype=np.float32), rng.integers(0, 3, n)


class ScriptedValLoss(Callback):
    """Replaces val_loss by a script (it runs first, the callbacks after it see the script)
    and keeps a copy of the weights after each epoch."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.weights: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]
        self.weights.append(self.model.get_weights())


def test_early_stopping_in_fit_stops_the_loop_and_restores_the_best_epoch():
    x, y = tiny_data()
    model = tiny_model()
    script = ScriptedValLoss([1.0, 0.7, 0.8, 0.75, 0.9, 0.1, 0.1, 0.1])
    es = EarlyStopping(patience=3, restore_best_weights=True)
    history = model.fit(x, y, epochs=8, batch_size=8, verbose=0, callbacks=[script, es],
                        validation_data=(x, y))
    assert es.stopped_epoch == 4 and history.epoch == [0, 1, 2, 3, 4]
    for w, best in zip(model.get_weights(), script.weights[1], strict=True):
        np.testing.assert_array_equal(w, best)
    assert not np.array_equal(script.weights[1][0], script.weights[4][0])


# --------------------------------------------------------------------------- ModelCheckpoint
def test_model_checkpoint_names_files_as_keras(tmp_path):
    x, y = tiny_data()
    model = tiny_model()
    pattern = tmp_path / "ckpt" / "{epoch:02d}-{val_loss:.4f}.safetensors"
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, validation_data=(x, y),
                        callbacks=[ModelCheckpoint(pattern)])
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    expected = [f"{e + 1:02d}-{v:.4f}.safetensors"
                for e, v in enumerate(history.history["val_loss"])]
    assert names == sorted(expected)
    last = cnnlab.load_model(tmp_path / "ckpt" / expected[-1])
    for a, b in zip(last.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_save_best_only_saves_improvements_only(tmp_path):
    cb = ModelCheckpoint(tmp_path / "m-{epoch}.safetensors", save_best_only=True)
    model, _ = run(cb, [1.0, 0.8, 0.9, 0.7, 0.7])
    assert [p.rsplit("/", 1)[1] for p in model.saved] == [
        "m-1.safetensors", "m-2.safetensors", "m-4.safetensors"]
    # a path without fields always holds the best model
    cb = ModelCheckpoint(tmp_path / "best.safetensors", monitor="val_accuracy",
                         save_best_only=True)
    model, _ = run(cb, [0.5, 0.7, 0.6, 0.65], key="val_accuracy")
    assert len(model.saved) == 2 and (tmp_path / "best.safetensors").read_text() == "weights 1"


def test_initial_value_threshold_must_be_beaten_first(tmp_path):
    cb = ModelCheckpoint(tmp_path / "m-{epoch}.safetensors", save_best_only=True,
                         initial_value_threshold=0.85)
    model, _ = run(cb, [1.0, 0.9, 0.8, 0.81])
    assert [p.rsplit("/", 1)[1] for p in model.saved] == ["m-3.safetensors"]


def test_save_best_only_without_the_metric_warns_and_saves(tmp_path):
    cb = ModelCheckpoint(tmp_path / "m-{epoch}.safetensors", save_best_only=True)
    with pytest.warns(UserWarning, match="val_loss available"):
        model, _ = run(cb, [0.0, 0.0], key=None)
    assert len(model.saved) == 2


def test_save_freq_counts_batches_across_epochs(tmp_path):
    cb = ModelCheckpoint(tmp_path / "e{epoch}-b{batch}-{loss:.1f}.safetensors", save_freq=2)
    model = FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    for epoch in range(2):
        cb.on_epoch_begin(epoch)
        for batch in range(5):
            cb.on_batch_end(batch, {"loss": 0.5, "accuracy": 0.5})
        cb.on_epoch_end(epoch, {"loss": 0.5, "val_loss": 0.4})
    assert [p.rsplit("/", 1)[1] for p in model.saved] == [
        f"e{e}-b{b}-0.5.safetensors" for e, b in ((1, 2), (1, 4), (2, 1), (2, 3), (2, 5))]


def test_model_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(InvalidArgumentError, match="not a valid format string"):
        ModelCheckpoint(tmp_path / "m-{epoch:02d.safetensors")
    with pytest.raises(InvalidArgumentError, match="save_freq"):
        ModelCheckpoint(tmp_path / "m.safetensors", save_freq=0)
    cb = ModelCheckpoint(tmp_path / "m-{val_acc:.2f}.safetensors")
    with pytest.raises(InvalidArgumentError, match="no 'val_acc' in the logs"):
        run(cb, [1.0])


# --------------------------------------------------------------------------- ReduceLROnPlateau
def test_reduce_lr_on_plateau_reduces_at_the_right_epochs():
    cb = ReduceLROnPlateau(factor=0.1, patience=1, min_delta=1e-4)
    model, seen = run(cb, [1.0, 0.99995, 0.5, 0.5, 0.4])
    # 0.99995 is within min_delta of 1.0: no improvement, reduce; 0.5 improves; 0.5 does not
    assert [logs["learning_rate"] for logs in seen] == pytest.approx([0.1, 0.1, 0.01, 0.01,
                                                                      0.001])
    assert model.optimizer.learning_rate == pytest.approx(0.001)


def test_reduce_lr_on_plateau_cooldown_and_min_lr():
    cb = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    model, seen = run(cb, [1.0] * 6 + [0.5] * 5)
    # Keras 3's counters: reductions at the ends of epochs 2, 4 and 8 (to the floor 0.02);
    # the epoch after each is cooldown, whose counter runs out before the wait counts.
    # At epoch 10 the wait is up again, but the rate is at the floor: no reduction, no
    # cooldown (Keras compares the rate with float32(min_lr))
    assert [logs["learning_rate"] for logs in seen] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.02, 0.02])
    assert model.optimizer.learning_rate == 0.02
    assert cb.cooldown_counter == 0 and cb.wait == 2


def test_reduce_lr_on_plateau_maximises_accuracy_and_resets_per_fit():
    cb = ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=1)
    model, _ = run(cb, [0.5, 0.6, 0.6], key="val_accuracy")
    assert model.optimizer.learning_rate == pytest.approx(0.05)
    model, _ = run(cb, [0.1, 0.2], key="val_accuracy", model=model)  # fresh best
    assert model.optimizer.learning_rate == pytest.approx(0.05)


def test_reduce_lr_on_plateau_refuses_a_schedule_and_bad_factors():
    model = FakeModel()
    model.optimizer = cnnlab.SGD(cnnlab.OneCycle(0.1, total_steps=10))
    cb = ReduceLROnPlateau()
    cb.set_model(model)
    with pytest.raises(InvalidArgumentError, match="schedule"):
        cb.on_train_begin()
    for factor in (1.0, 2.0, -0.5):
        with pytest.raises(InvalidArgumentError, match="factor"):
            ReduceLROnPlateau(factor=factor)


def test_reduce_lr_on_plateau_in_fit_changes_the_rate_the_optimizer_uses(tmp_path):
    x, y = tiny_data()
    model = tiny_model()
    script = ScriptedValLoss([1.0, 1.0, 1.0, 1.0])
    log = tmp_path / "log.csv"
    model.fit(x, y, epochs=4, batch_size=8, verbose=0, validation_data=(x, y),
              callbacks=[script, ReduceLROnPlateau(factor=0.5, patience=1), CSVLogger(log)])
    assert model.optimizer.learning_rate == pytest.approx(0.1 * 0.5**3)
    rows = list(csv.DictReader(log.read_text().splitlines()))
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.1, 0.1, 0.05, 0.025])


# --------------------------------------------------------------------------- CSVLogger
LOGS = [
    {"loss": 1.25, "accuracy": 0.5, "val_loss": 1.5, "val_accuracy": 0.25, "time": 2.0},
    {"loss": 0.75, "accuracy": 0.625, "val_loss": 1.0, "val_accuracy": 0.5, "time": 1.5},
    {"loss": 0.5, "accuracy": 0.875, "val_loss": 0.8125, "val_accuracy": 0.75, "time": 1.25},
]


def log_epochs(cb: CSVLogger, logs: list[dict], end: bool = True) -> None:
    cb.set_model(FakeModel())
    cb.on_train_begin()
    for epoch, entry in enumerate(logs):
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, dict(entry))
    if end:
        cb.on_train_end()


def test_csv_logger_writes_keras_columns(tmp_path):
    path = tmp_path / "log.csv"
    log_epochs(CSVLogger(path), LOGS)
    assert path.read_text() == (
        "epoch,accuracy,loss,time,val_accuracy,val_loss\n"
        "0,0.5,1.25,2.0,0.25,1.5\n"
        "1,0.625,0.75,1.5,0.5,1.0\n"
        "2,0.875,0.5,1.25,0.75,0.8125\n"
    )


def test_csv_logger_adds_validation_columns_and_na(tmp_path):
    path = tmp_path / "sub" / "log.tsv"
    logs = [{"loss": 1.0, "accuracy": 0.5, "time": 3.0}, {"loss": 0.1, "time": 1.0}]
    log_epochs(CSVLogger(path, separator="\t"), logs)
    assert path.read_text() == (
        "epoch\taccuracy\tloss\ttime\tval_accuracy\tval_loss\n"
        "0\t0.5\t1.0\t3.0\tNA\tNA\n"
        "1\tNA\t0.1\t1.0\tNA\tNA\n"
    )


def test_every_row_is_on_disk_before_the_next_epoch(tmp_path):
    path = tmp_path / "log.csv"
    cb = CSVLogger(path)
    log_epochs(cb, LOGS[:2], end=False)  # no on_train_end: a crash would leave the file so
    assert path.read_text().splitlines()[-1] == "1,0.625,0.75,1.5,0.5,1.0"
    cb.on_train_end()


def test_append_continues_a_file_and_cuts_a_partial_row(tmp_path):
    path = tmp_path / "log.csv"
    log_epochs(CSVLogger(path), LOGS[:2])
    with path.open("a") as f:
        f.write("2,0.8")  # a row cut short by a crash
    cb = CSVLogger(path, append=True)
    cb.set_model(FakeModel())
    cb.on_train_begin()
    cb.on_epoch_end(2, dict(LOGS[2]))
    cb.on_train_end()
    assert path.read_text() == (
        "epoch,accuracy,loss,time,val_accuracy,val_loss\n"
        "0,0.5,1.25,2.0,0.25,1.5\n"
        "1,0.625,0.75,1.5,0.5,1.0\n"
        "2,0.875,0.5,1.25,0.75,0.8125\n"
    )
    # append=False starts afresh
    log_epochs(CSVLogger(path), LOGS[2:])
    assert path.read_text().splitlines() == [
        "epoch,accuracy,loss,time,val_accuracy,val_loss", "0,0.875,0.5,1.25,0.75,0.8125"]


def test_append_to_an_empty_or_missing_file_writes_the_header(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("")
    log_epochs(CSVLogger(path, append=True), LOGS[:1])
    assert path.read_text().splitlines()[0].startswith("epoch,accuracy")
    other = tmp_path / "new.csv"
    log_epochs(CSVLogger(other, append=True), LOGS[:1])
    assert other.read_text() == path.read_text()


def test_csv_logger_in_fit_matches_the_history(tmp_path):
    x, y = tiny_data()
    model = tiny_model()
    path = tmp_path / "log.csv"
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, validation_data=(x, y),
                        callbacks=[CSVLogger(path)])
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for key, values in history.history.items():
        assert [float(r[key]) for r in rows] == values  # repr: every digit survives


def test_csv_logger_refuses_a_long_separator(tmp_path):
    with pytest.raises(InvalidArgumentError, match="separator"):
        CSVLogger(tmp_path / "x.csv", separator=", ")


def test_all_four_are_exported_at_the_top_level():
    for name in ("EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau", "CSVLogger"):
        assert getattr(cnnlab, name) is getattr(cnnlab.training, name)
        assert name in cnnlab.__all__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isclose(ReduceLROnPlateau().min_delta, 1e-4)
