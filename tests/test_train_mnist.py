"""The slides' experiment, shortened: the seed model learns MNIST.

A few hundred Adam steps (2 epochs of 157 batches of 32 on 5,000 training
images) must reach at least 95% accuracy on 1,000 test images (the slides
report 99.35% after full training). With seed 0 and learning rate 2e-3 this
run measured 96.8% (1e-3 gave 95.8%, too close to the floor); 1 epoch gave 95.3%.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab


@pytest.mark.slow
def test_seed_model_learns_mnist(mnist_small):
    x_train, y_train, x_test, y_test = mnist_small
    assert x_train.shape == (5000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert x_train.dtype == np.float32 and 0.0 <= x_train.min() and x_train.max() <= 1.0

    model = cnnlab.seed_model(seed=0)
    model.compile(optimizer=cnnlab.Adam(2e-3), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=2, batch_size=32, verbose=0)
    assert history.epoch == [0, 1]
    assert history.history["loss"][1] < history.history["loss"][0]
    assert all(np.isfinite(w).all() for w in model.get_weights())

    loss, acc = model.evaluate(x_test, y_test)
    assert acc >= 0.95, f"test accuracy {acc:.4f} (loss {loss:.4f})"
    assert loss < 0.25
    probs = model.predict(x_test[:100])
    assert np.mean(probs.argmax(axis=1) == y_test[:100]) >= 0.9
