"""Ship a trained model where it runs: ONNX files and a static browser demo.

* :mod:`cnnlab.export.onnx`: :func:`~cnnlab.export.onnx.export_onnx` writes a
  model as an ONNX graph (opset 17) that ONNX Runtime runs; what
  ``model.export_onnx(path)`` and ``cnnlab export MODEL OUT.onnx`` call.
* :mod:`cnnlab.export.web`: :func:`~cnnlab.export.web.export_web` writes a
  folder that runs the model in a browser with onnxruntime-web, served by any
  static file server; what ``cnnlab export MODEL --web DIR`` calls.

Both import their optional dependencies (``onnx``; the ``onnx`` extra) only
when called, so ``import cnnlab`` never needs them.
"""
