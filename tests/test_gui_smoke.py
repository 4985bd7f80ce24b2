"""The first window: it opens offscreen and lists the sample models."""

from __future__ import annotations

from pathlib import Path

from edgestudio.gui.main_window import MainWindow


def test_main_window_lists_samples(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    names = [window.models.topLevelItem(i).text(0) for i in range(window.models.topLevelItemCount())]
    assert names == ["digits_cnn.keras", "digits_cnn_savedmodel", "digits_cnn.onnx", "digits_cnn.tflite"]
    assert window.models.topLevelItem(2).text(1) == "ONNX"
    shot = tmp_path / "main.png"
    assert window.grab().save(str(shot)) and shot.stat().st_size > 1000
