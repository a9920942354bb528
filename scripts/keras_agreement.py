"""The shipped model through Keras and back, on the 10,000 MNIST test images (issue 16).

Run from an empty folder (it writes three model files there):
    cd "$(mktemp -d)" && KERAS_BACKEND=torch python \
        /path/to/cnnlab/scripts/keras_agreement.py
"""

import os
import time

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402

import cnnlab  # noqa: E402
from cnnlab.datasets.mnist import load_mnist  # noqa: E402
from cnnlab.pixels import scale_pixels  # noqa: E402
from cnnlab.pretrained import pretrained_path  # noqa: E402

_, (images, labels) = load_mnist()
x = scale_pixels(np.asarray(images))[..., None]
y = np.asarray(labels).ravel()
model = cnnlab.load_model(pretrained_path())

t = time.perf_counter()
model.save("mnist_seed.keras")
t_write = time.perf_counter() - t
t = time.perf_counter()
back = cnnlab.load_model("mnist_seed.keras")
t_read = time.perf_counter() - t
print(f"write .keras {t_write * 1e3:.0f} ms, read it back {t_read * 1e3:.0f} ms; "
      f"{os.path.getsize('mnist_seed.keras'):,} bytes "
      f"(.safetensors {os.path.getsize(pretrained_path()):,})")

k = keras.saving.load_model("mnist_seed.keras", safe_mode=True)
p_c = model.predict(x)
p_k = np.asarray(k.predict(x, batch_size=1000, verbose=0))
print(f"cnnlab -> .keras -> Keras: max |p_keras - p_cnnlab| {np.abs(p_c - p_k).max():.2e}, "
      f"argmax agree {(p_c.argmax(1) == p_k.argmax(1)).sum()}/{len(y)}, accuracy "
      f"cnnlab {(p_c.argmax(1) == y).mean():.4f}, Keras {(p_k.argmax(1) == y).mean():.4f}")
same_w = all((a == b).all() for la, lb in zip(model.layers, back.layers, strict=True)
             for a, b in zip(la.weights, lb.weights, strict=True))
print(f"cnnlab -> .keras -> cnnlab: weights identical {same_w}, predictions identical "
      f"{bool((back.predict(x) == p_c).all())}")

k.save("from_keras.keras")
k.save("from_keras.h5")
for name in ("from_keras.keras", "from_keras.h5"):
    p2 = cnnlab.load_model(name).predict(x)
    print(f"saved by Keras as {name}, read by cnnlab: max |dp| vs Keras "
          f"{np.abs(p2 - p_k).max():.2e}, argmax agree {(p2.argmax(1) == p_k.argmax(1)).sum()}"
          f"/{len(y)}")
