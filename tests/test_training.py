"""The training loop's seams: batch sources, Keras-shaped callbacks, the gradient hook."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab.errors import InvalidArgumentError
from cnnlab.layers import Activation, Conv2D, Dense, Flatten, MaxPooling2D
from cnnlab.training import Callback, train_step


def tiny_model(seed: int = 0, dtype: str = "float32") -> cnnlab.Sequential:
    model = cnnlab.Sequential(
        [Conv2D(4, 3, activation="relu", dtype=dtype), MaxPooling2D(2, dtype=dtype),
         Flatten(dtype=dtype), Dense(3, dtype=dtype), Activation("softmax", dtype=dtype)],
        input_shape=(8, 8, 1), seed=seed,
    )
    model.compile(optimizer=cnnlab.SGD(0.1))
    return model


def tiny_data(n: int = 40, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, n)


class Batches:
    """A re-iterable dataset object, as a user's streaming loader would be."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        for i in range(0, len(self.x), self.batch_size):
            yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]


def test_iterable_of_batches_trains_exactly_like_arrays():
    x, y = tiny_data()
    a, b = tiny_model(), tiny_model()
    ha = a.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0,
               validation_data=(x[:10], y[:10]))
    data = Batches(x, y, 8)
    hb = b.fit(data, epochs=2, verbose=0, validation_data=[(x[:10], y[:10])])
    assert data.epochs_seen == [0, 1]
    # the same batches in the same order, the same shapes: the same numbers, bit for bit
    assert ha.history["loss"] == hb.history["loss"]
    assert ha.history["val_loss"] == hb.history["val_loss"]
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_a_plain_list_of_batches_works_and_one_hot_labels_are_accepted():
    x, y = tiny_data(16)
    onehot = np.eye(3, dtype=np.float32)[y]
    model = tiny_model()
    history = model.fit([(x[:8], onehot[:8]), (x[8:], onehot[8:])], epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])


def test_iterators_and_missing_labels_are_refused_with_a_clear_error():
    x, y = tiny_data(16)
    model = tiny_model()
    with pytest.raises(InvalidArgumentError, match="iterator"):
        model.fit(iter([(x, y)]), epochs=2, verbose=0)
    with pytest.raises(InvalidArgumentError, match="without labels"):
        model.fit(x, epochs=1, verbose=0)
    with pytest.raises(InvalidArgumentError, match="not an \\(x, y\\) pair"):
        model.fit([x], epochs=1, verbose=0)
    with pytest.raises(InvalidArgumentError, match="no batches"):
        model.fit([], epochs=1, verbose=0)
    with pytest.raises(InvalidArgumentError, match="epochs must be a positive int"):
        model.fit(x, y, epochs=np.int64(0), verbose=0)


def test_callbacks_get_keras_hooks_in_order_and_can_stop_training():
    x, y = tiny_data(24)
    events: list[tuple] = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            events.append(("train_begin",))

        def on_epoch_begin(self, epoch, logs=None):
            events.append(("epoch_begin", epoch))

        def on_batch_begin(self, batch, logs=None):
            events.append(("batch_begin", batch))

        def on_batch_end(self, batch, logs=None):
            events.append(("batch_end", batch, sorted(logs)))

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch, sorted(logs)))
            self.model.stop_training = epoch == 1

        def on_train_end(self, logs=None):
            events.append(("train_end",))

    model = tiny_model()
    rec = Recorder()
    history = model.fit(x, y, epochs=5, batch_size=12, verbose=0, callbacks=[rec],
                        validation_data=(x, y))
    assert rec.model is model
    assert history.epoch == [0, 1]  # stopped after the second epoch
    batch_logs = ["accuracy", "images_per_s", "loss"]
    epoch_logs = ["accuracy", "loss", "time", "val_accuracy", "val_loss"]
    assert events == [
        ("train_begin",),
        ("epoch_begin", 0), ("batch_begin", 0), ("batch_end", 0, batch_logs),
        ("batch_begin", 1), ("batch_end", 1, batch_logs), ("epoch_end", 0, epoch_logs),
        ("epoch_begin", 1), ("batch_begin", 0), ("batch_end", 0, batch_logs),
        ("batch_begin", 1), ("batch_end", 1, batch_logs), ("epoch_end", 1, epoch_logs),
        ("train_end",),
    ]
    with pytest.raises(InvalidArgumentError, match="Callback"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[object()])


def test_the_gradient_hook_sees_every_gradient_and_its_changes_are_applied():
    """The seam where a distributed all-reduce goes: what it leaves in the list is
    what the optimizer applies."""
    x, y = tiny_data(16)
    plain, halved, zeroed = tiny_model(dtype="float64"), tiny_model(dtype="float64"), \
        tiny_model(dtype="float64")
    seen: list[list[np.ndarray]] = []

    def record_and_halve(grads):
        seen.append([g.copy() for g in grads])
        for g in grads:
            g *= 0.5

    def zero(grads):
        for g in grads:
            g[...] = 0

    before = zeroed.get_weights()
    plain.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    halved.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0,
               reduce_gradients=record_and_halve)
    zeroed.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, reduce_gradients=zero)
    assert len(seen) == 1 and len(seen[0]) == 4  # one step; conv kernel, bias, dense kernel, bias
    # SGD: w - lr * g / 2 lies halfway between the start and the full step
    start = tiny_model(dtype="float64").get_weights()
    for w0, wp, wh in zip(start, plain.get_weights(), halved.get_weights(), strict=True):
        np.testing.assert_allclose(wh - w0, (wp - w0) / 2, rtol=1e-12, atol=1e-15)
    for w0, wz in zip(before, zeroed.get_weights(), strict=True):
        np.testing.assert_array_equal(w0, wz)


def test_train_step_folds_the_softmax_into_the_loss_only_when_it_is_a_separate_layer():
    x, y = tiny_data(8)
    separate = tiny_model(dtype="float64")
    assert separate.loss_head.from_logits
    fused = cnnlab.Sequential(
        [Conv2D(4, 3, activation="relu", dtype="float64"), MaxPooling2D(2, dtype="float64"),
         Flatten(dtype="float64"), Dense(3, activation="softmax", dtype="float64")],
        input_shape=(8, 8, 1), seed=0)
    fused.compile(optimizer=cnnlab.SGD(0.1))
    assert not fused.loss_head.from_logits
    la, _ = train_step(separate, x.astype(np.float64), y)
    lb, _ = train_step(fused, x.astype(np.float64), y)
    assert la == pytest.approx(lb, rel=1e-12)


def test_resume_from_a_checkpoint_with_streamed_batches(tmp_path):
    x, y = tiny_data(48)
    ref = tiny_model()
    ref.fit(Batches(x, y, 8), epochs=2, verbose=0)

    class Crash(Exception):
        pass

    class CrashAt(Callback):
        def on_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == 9:  # mid second epoch
                raise Crash

    first = tiny_model()
    with pytest.raises(Crash):
        first.fit(Batches(x, y, 8), epochs=2, verbose=0, callbacks=[CrashAt()],
                  checkpoint_dir=tmp_path, checkpoint_every=1)
    second = tiny_model(seed=5)
    history = second.fit(Batches(x, y, 8), epochs=2, verbose=0, checkpoint_dir=tmp_path,
                         resume=True)
    assert history.epoch == [0, 1]
    for a, b in zip(ref.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_uint8_pixels_are_scaled_like_to_model_input_batch_by_batch():
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 3, 20)
    from cnnlab.datasets import to_model_input

    a, b = tiny_model(), tiny_model()
    a.fit(pixels, y, epochs=1, batch_size=8, verbose=0)
    b.fit(to_model_input(pixels), y, epochs=1, batch_size=8, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.predict(pixels), a.predict(to_model_input(pixels)))
    assert a.evaluate(pixels, y) == a.evaluate(to_model_input(pixels), y)


def test_a_memory_mapped_dataset_trains_exactly_like_the_array(tmp_path, monkeypatch):
    """A mapped .npy is read row by row with pread (nothing of it mapped into memory);
    a view of one is gathered from the map, whose pages are released as it goes."""
    from cnnlab.datasets.images import IndexedArray
    from cnnlab.training import data

    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
    y = rng.integers(0, 3, 64)
    np.save(tmp_path / "x.npy", pixels)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    reads, released = [], []
    real_read, real_release = data.FileRows.read, data._release
    monkeypatch.setattr(data.FileRows, "read",
                        lambda self, idx: (reads.append(len(idx)), real_read(self, idx))[1])
    monkeypatch.setattr(data, "RELEASE_BYTES", 1000)  # release after every two batches
    monkeypatch.setattr(data, "_release", lambda m: (released.append(m), real_release(m)))
    histories, weights = [], []
    for x in (pixels, mapped, mapped[:], IndexedArray(mapped, np.arange(64))):
        model = tiny_model()
        histories.append(model.fit(x, y, epochs=2, batch_size=8, verbose=0).history["loss"])
        weights.append(model.get_weights())
    assert histories[1] == histories[2] == histories[3] == histories[0]
    for w in weights[1:]:
        for wa, wb in zip(weights[0], w, strict=True):
            np.testing.assert_array_equal(wa, wb)
    assert reads == [8] * 16 * 2  # the whole map and the IndexedArray: 2 x 2 epochs x 8 batches
    assert len(released) == 2 * (8 // 2 + 1)  # the view: every 1000 bytes, and at epoch end


def test_augment_transforms_training_batches_only_with_the_model_generator():
    x, y = tiny_data(16)
    calls = []

    def negate(batch, rng):
        calls.append((batch.shape, batch.dtype, rng))
        return 1.0 - batch

    model = tiny_model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, augment=negate, validation_data=(x, y))
    assert [c[:2] for c in calls] == [((8, 8, 8, 1), np.float32)] * 2  # not the validation
    assert all(c[2] is model.rng for c in calls)
    same = tiny_model()
    same.fit(1.0 - x, y, epochs=1, batch_size=8, verbose=0)
    for wa, wb in zip(model.get_weights(), same.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
