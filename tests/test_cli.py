"""The command line end to end on a small subset (issue 3)."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import cnnlab
from cnnlab.cli import main
from cnnlab.datasets import load_mnist, to_model_input
from cnnlab.preprocess import prepare_image


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """`cnnlab train` for 1 epoch on 2,000 images: the artifacts of a real run."""
    out = tmp_path_factory.mktemp("run")
    rc = main(["train", "--epochs", "1", "--train-limit", "2000", "--test-limit", "500",
               "--out", str(out), "--quiet", "--seed", "3"])
    assert rc == 0
    return out


def test_train_writes_model_history_and_figures(trained_run, capsys):
    for name in ("model.safetensors", "history.json", "history.csv", "training_config.json",
                 "checkpoint.safetensors", "curves.png", "confusion_matrix.png"):
        assert (trained_run / name).is_file(), name
    history = json.loads((trained_run / "history.json").read_text())
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history["loss"]) == 1
    # one epoch on 2,000 images already beats chance by far
    assert history["val_accuracy"][0] > 0.5
    csv_lines = (trained_run / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy")
    assert len(csv_lines) == 2


def test_train_with_one_cycle_schedule_records_and_resumes_it(tmp_path, capsys):
    out = tmp_path / "oc"
    args = ["train", "--epochs", "2", "--train-limit", "300", "--test-limit", "100",
            "--batch-size", "100", "--lr", "4e-3", "--schedule", "onecycle", "--out", str(out),
            "--quiet", "--no-figures", "--no-validation"]
    assert main(args) == 0
    model = cnnlab.load_model(out / "model.safetensors")
    rate = model.training_config["optimizer"]["learning_rate"]
    assert rate == {"name": "onecycle", "peak": 4e-3, "total_steps": 6, "warmup": 0.15,
                    "start_div": 25.0, "end_div": 1e4}
    assert model.optimizer is not None and model.optimizer.schedule is not None
    assert model.optimizer.schedule(6) == pytest.approx(4e-7)
    # resuming a finished run reads the schedule back from its folder
    assert main(["train", "--resume", str(out), "--quiet", "--no-figures"]) == 0


def test_evaluate_prints_the_slides_lines(trained_run, capsys):
    assert main(["evaluate", str(trained_run / "model.safetensors"), "--limit", "500"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Test loss: ") and out[1].startswith("Test accuracy: ")
    acc = float(out[1].split(": ")[1])
    model = cnnlab.load_model(trained_run / "model.safetensors")
    (_, _), (x_test, y_test) = load_mnist()
    # the CLI's own input scaling (x * float32(1/255)): x / float32(255) differs in the
    # last bit for half the grey levels, and then a near-tie could flip one prediction
    _, expected = model.evaluate(to_model_input(x_test[:500]), y_test[:500])
    assert acc == pytest.approx(expected, abs=1e-12)
    history = json.loads((trained_run / "history.json").read_text())
    assert acc == pytest.approx(history["val_accuracy"][-1], abs=1e-12)


def test_predict_png_rendered_from_a_test_image(trained_run, tmp_path, capsys):
    (_, _), (x_test, y_test) = load_mnist()
    # a 7, drawn large and dark on white, as a user would photograph it
    img = Image.fromarray(255 - x_test[0]).resize((140, 140), Image.Resampling.BILINEAR)
    png = tmp_path / "seven.png"
    img.save(png)
    model_path = trained_run / "model.safetensors"
    assert main(["predict", str(model_path), str(png), "--top", "3"]) == 0
    line = capsys.readouterr().out.strip()
    head, ranked = line.split("    (")
    predicted = int(head.rsplit(": ", 1)[1])
    probs = cnnlab.load_model(model_path).predict(prepare_image(png)[None, :, :, None])[0]
    assert predicted == int(np.argmax(probs))
    first = ranked.split("  ")[0]
    assert first == f"{predicted}: {probs[predicted]:.4f}"


def test_summary_default_is_the_slides_table(capsys):
    assert main(["summary"]) == 0
    text = capsys.readouterr().out
    assert "Total params: 1,134,426" in text
    assert " conv2d_2 (Conv2D)" in text and "(None, 10, 10, 256)" in text


def test_summary_of_a_model_file(trained_run, capsys):
    assert main(["summary", str(trained_run / "model.safetensors")]) == 0
    assert "Total params: 1,134,426" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["evaluate", "/no/such/model.safetensors"], "no such model file"),
        (["predict", "/no/such/model.safetensors", "x.png"], "no such model file"),
        (["train", "--data", "/no/such/dir", "--out", "{tmp}/r"], "/no/such/dir"),
        (["train", "--resume", "{tmp}/empty"], "training_config.json"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(argv, fragment, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab: error: ") and "\n" not in err and fragment in err
    assert "Traceback" not in err


def test_predict_rejects_a_non_image(trained_run, tmp_path, capsys):
    bogus = tmp_path / "notes.png"
    bogus.write_text("this is not a picture")
    assert main(["predict", str(trained_run / "model.safetensors"), str(bogus)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: ") and "notes.png" in err


def test_bad_numbers_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--epochs", "0"])
    assert e.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_existing_run_is_not_overwritten(trained_run, capsys):
    before = (trained_run / "model.safetensors").read_bytes()
    assert main(["train", "--out", str(trained_run), "--epochs", "1"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (trained_run / "model.safetensors").read_bytes() == before


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_predict_rejects_a_truncated_png(trained_run, tmp_path, capsys):
    header = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 50, 50, 8, 0, 0,
                                                                       0, 0))
    broken = tmp_path / "broken.png"
    broken.write_bytes(header)  # no image data at all
    assert main(["predict", str(trained_run / "model.safetensors"), str(broken)]) == 2
    assert "broken.png" in capsys.readouterr().err


# --------------------------------------------------------------------------- serve
@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("missing.safetensors", None, "no such model file"),
        ("corrupt.safetensors", b"not a model file", "corrupt.safetensors"),
    ],
)
def test_serve_user_errors_print_one_line_and_exit_2(name, content, fragment, tmp_path,
                                                     capsys, monkeypatch):
    uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (cnnlab[serve])")
    pytest.importorskip("fastapi", reason="FastAPI is not installed (cnnlab[serve])")

    def no_server(*args, **kwargs):
        raise AssertionError("the server must not start on a user error")

    monkeypatch.setattr(uvicorn, "run", no_server)
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert main(["serve", str(path), "--port", "0"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("cnnlab: error: ") and "\n" not in err and fragment in err
    assert "Traceback" not in err and captured.out == ""


def test_serve_bad_port_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--port", "99999"])
    assert e.value.code == 2
    assert "0..65535" in capsys.readouterr().err
