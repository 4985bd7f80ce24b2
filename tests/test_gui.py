"""The studio, driven for real (offscreen, pytest-qt): real files dropped, real jobs in the worker pool,
real conversions, quantization, live benchmarks and the comparison with its Pareto front."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent

from edgestudio.core.formats import ModelFormat
from edgestudio.core.workspace import Workspace
from edgestudio.gui.main_window import MainWindow
from tests.conftest import SAMPLES

TEST = str(SAMPLES / "digits_test.npz")
CALIB = str(SAMPLES / "digits_calib.npz")
LONG = 240_000  # ms: conversions with TensorFlow in a cold worker on a slow CI machine


def drop_files(widget, paths: list[Path]) -> None:  # type: ignore[no-untyped-def]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(event)


def children_of(win: MainWindow, model_id: int) -> list:  # type: ignore[type-arg]
    return win.workspace.children(model_id)


def test_drop_a_model_shows_it_with_details(qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "digits.onnx"
    shutil.copy(SAMPLES / "digits_cnn.onnx", src)
    drop_files(window.browser.tree, [src])
    qtbot.waitUntil(lambda: window.browser.count() == 1)
    model_id = window.browser.current_id()
    assert window.browser.item_for(model_id).text(1) == "ONNX"
    qtbot.waitUntil(lambda: window.details.ops.rowCount() > 0, timeout=60_000)
    assert "parameters" in window.details.summary.text()
    assert window.details.io.item(0, 1).text() == "image"
    counts = [int(window.details.ops.item(r, 1).text()) for r in range(window.details.ops.rowCount())]
    assert counts == sorted(counts, reverse=True) and window.details._op_bars.maximum == counts[0]  # op histogram


def test_drop_a_corrupt_file_shows_a_message_and_changes_nothing(qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "broken.onnx"
    bad.write_bytes((SAMPLES / "digits_cnn.onnx").read_bytes()[:5000])
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    drop_files(window.browser.tree, [bad, text])  # imported off the GUI thread: the message follows
    qtbot.waitUntil(lambda: window.browser.banner.isVisible())
    assert window.browser.count() == 0 and window.workspace.models() == []
    message = window.browser.banner.text()
    assert "broken.onnx" in message and "truncated" in message and "notes.txt" in message
    assert "Traceback" not in message
    drop_files(window.browser.tree, [SAMPLES / "digits_cnn.tflite"])  # the app goes on
    qtbot.waitUntil(lambda: window.browser.count() == 1)
    assert not window.browser.banner.isVisible()


def test_wizard_to_openvino_gives_artifact_with_passing_parity(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    wizard = window.model_action("convert", model_id)
    qtbot.addWidget(wizard)
    wizard.next()  # source -> targets
    assert wizard.target_page.boxes[ModelFormat.SAVED_MODEL].isEnabled()  # ONNX -> SavedModel: onnx2tf
    assert wizard.target_page.mcu.isEnabled()
    wizard.target_page.boxes[ModelFormat.OPENVINO].setChecked(True)
    wizard.next()  # -> options, generated from the converters' schema
    assert wizard.options_page.form is not None and "opt_compress_fp16" in [
        e.objectName() for e in wizard.options_page.form._editors.values()]
    wizard.next()  # -> plan
    assert "openvino" in wizard.plan_page.text.text()
    wizard.next()  # -> run
    qtbot.waitUntil(lambda: wizard.run_page.isComplete(), timeout=LONG)
    assert not wizard.errors, wizard.errors
    report = wizard.run_page.report
    assert report.rowCount() == 1 and report.item(0, 6).text().startswith("✓ passed")
    qtbot.waitUntil(lambda: len(children_of(window, model_id)) == 1)
    child = children_of(window, model_id)[0]
    assert child.format.value == "openvino"
    item = window.browser.item_for(child.id)
    assert item is not None and item.parent() is window.browser.item_for(model_id) and item.text(3) == "parity ✓ (random)"  # random inputs: said so


def test_benchmark_curve_grows_live(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.tflite"])
    job = window.benchmark(model_id, iterations=200_000)
    qtbot.waitUntil(lambda: window.live.points > 200, timeout=60_000)
    assert window.jobs.status_of(job) == "running"  # points arrived while it ran, not at the end
    first = window.live.points
    qtbot.waitUntil(lambda: window.live.points > first + 1000, timeout=60_000)
    qtbot.waitUntil(lambda: window.live.stats["p50"].text() != "-")
    window.bridge.cancel(job)
    qtbot.waitUntil(lambda: window.jobs.status_of(job) == "cancelled", timeout=30_000)


def test_cancel_from_the_jobs_panel(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    job = window.benchmark(model_id, iterations=5_000_000)
    qtbot.waitUntil(lambda: window.jobs.status_of(job) == "running", timeout=60_000)
    button = window.jobs.cancel_button(job)
    assert button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.jobs.status_of(job) == "cancelled", timeout=30_000)
    assert not button.isEnabled()


def test_the_whole_flow(qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Drop the Keras sample; convert it to ONNX, TFLite and OpenVINO; quantize one to INT8; compare them all
    on their runtimes; the Pareto front is drawn from the real results."""
    drop_files(window.browser.tree, [SAMPLES / "digits_cnn.keras"])
    qtbot.waitUntil(lambda: window.browser.count() == 1)
    root = window.browser.current_id()
    jobs = [window.convert_dropped(root, fmt) for fmt in ("onnx", "tflite", "openvino")]
    qtbot.waitUntil(lambda: all(window.jobs.status_of(j) in ("succeeded", "failed") for j in jobs), timeout=LONG)
    assert [window.jobs.status_of(j) for j in jobs] == ["succeeded"] * 3
    formats = {m.format.value: m for m in window.workspace.models()}
    assert {"onnx", "tflite", "openvino", "savedmodel"} <= set(formats)  # Keras -> SavedModel -> IR keeps its hop

    onnx = formats["onnx"]
    window.browser.select(onnx.id)
    panel = window.optimize
    panel.runtime.setCurrentText("onnxruntime")
    panel.method.setCurrentText("int8-static")
    panel.calibration.set_text(CALIB)
    panel.dataset.set_text(TEST)
    job = panel.run()
    qtbot.waitUntil(lambda: window.jobs.status_of(job) in ("succeeded", "failed"), timeout=LONG)
    assert window.jobs.status_of(job) == "succeeded"
    int8 = children_of(window, onnx.id)[-1]
    badge = window.browser.item_for(int8.id).text(3)  # drift from FP32, then top-1
    assert int8.options["method"] == "int8-static" and badge.startswith("cos ") and "top-1" in badge

    ids = [formats["onnx"].id, formats["tflite"].id, formats["openvino"].id, int8.id]
    dialog = window.model_action("compare", ids[0])  # variants x runtimes x devices, picked in a dialog
    dialog.set_checked(ids, [("onnxruntime", "CPU"), ("openvino", "CPU"), ("litert", "CPU")])
    assert dialog.run_count() == (7, 5)  # ONNX x2, TFLite x2, IR x1, INT8 ONNX x2; 5 pairs cannot run
    assert "7 runs" in dialog.summary.text()
    dialog.dataset.setText(TEST)
    dialog.iterations.setValue(50)
    dialog.run_button.click()
    qtbot.waitUntil(lambda: window.comparison.rows and not window._compare, timeout=LONG)
    rows = window.comparison.rows
    measured = [r for r in rows if r.get("p50_ms") is not None]
    assert len(rows) == len(measured) == 7, [r.get("error") for r in rows]
    assert {(r["runtime"], r["device"]) for r in rows} == {("onnxruntime", "CPU"), ("openvino", "CPU"), ("litert", "CPU")}
    assert all(r.get("accuracy", 0) > 0.95 for r in measured)
    assert "(comparison)" in window.live.title.text() and window.live.points > 0  # each benchmark shown live
    front = window.comparison.pareto_points()
    assert front and all(any(abs(x - r["ranked_p50_ms"]) < 1e-9 for r in measured if r["pareto"]) for x, _ in front)
    window.browser.select(root)
    click_point(qtbot, window.comparison, int8.path)  # a real mouse click on the scatter plot
    assert window.browser.current_id() != root
    clicked = window.workspace.model(window.browser.current_id()).path
    assert clicked == int8.path or _same_spot(window.comparison, clicked, int8.path)
    pngs = window.comparison.export_png(tmp_path / "charts")
    assert all(p.stat().st_size > 1000 for p in pngs)
    from PySide6.QtGui import QImage

    figure = QImage(str(window.comparison.export_figure(tmp_path / "comparison.png")))  # one labeled picture
    assert figure.width() >= 1400 and figure.height() >= 1000
    window.comparison.export_csv(tmp_path / "table.csv")
    assert len((tmp_path / "table.csv").read_text().splitlines()) == len(rows) + 1


def _spot(view, path: str) -> QPointF:  # type: ignore[no-untyped-def]
    from edgestudio.bench.compare import ranked_p50

    row = next(r for r in view._measured if r["model"] == path and r.get("accuracy") is not None)
    return QPointF(ranked_p50(row), row["accuracy"])  # where the point is drawn: the paired round's p50


def click_point(qtbot, view, path: str) -> None:  # type: ignore[no-untyped-def]
    plot = view.scatter_plot
    scene_pos = plot.plotItem.vb.mapViewToScene(_spot(view, path))
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=plot.mapFromScene(scene_pos))


def _same_spot(view, a: str, b: str) -> bool:  # type: ignore[no-untyped-def]
    """Two variants drawn on top of each other (same latency and accuracy, to the pixel)."""
    vb = view.scatter_plot.plotItem.vb
    pa, pb = (vb.mapViewToScene(_spot(view, p)) for p in (a, b))
    return abs(pa.x() - pb.x()) < 8 and abs(pa.y() - pb.y()) < 8


def test_history_survives_restart(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    ws = Workspace(tmp_path / "ws")
    win = MainWindow(ws, use_webengine=False, settings=settings)
    qtbot.addWidget(win)
    (model_id,) = win.import_paths([SAMPLES / "digits_cnn.onnx"])
    job = win.benchmark(model_id, iterations=50)
    qtbot.waitUntil(lambda: win.jobs.status_of(job) == "succeeded", timeout=60_000)
    win.close()
    win.shutdown()
    ws.close()
    ws2 = Workspace(tmp_path / "ws")
    win2 = MainWindow(ws2, use_webengine=False, settings=settings)
    qtbot.addWidget(win2)
    assert win2.jobs.status_of(job) == "succeeded" and win2.browser.count() == 1
    win2.shutdown()
    ws2.close()


def test_deployment_package_from_the_gui(qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.tflite"])
    job = window.package(model_id, tmp_path / "digits.zip", tflm=True)
    qtbot.waitUntil(lambda: window.jobs.status_of(job) in ("succeeded", "failed"), timeout=120_000)
    assert window.jobs.status_of(job) == "succeeded"
    import zipfile

    names = zipfile.ZipFile(tmp_path / "digits.zip").namelist()
    assert "digits_cnn/run.py" in names and "digits_cnn/tflm/digits_cnn_model_data.cc" in names


def test_format_icons_are_distinct_and_shown(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtGui import QColor

    from edgestudio.gui.icons import format_color, format_pixmap

    colors = set()
    for fmt in ModelFormat:
        img = format_pixmap(fmt, 32).toImage()
        edge = img.pixelColor(3, img.height() // 2)  # inside the tag, left of the text
        assert edge.name() == QColor(format_color(fmt)).name(), fmt
        colors.add(edge.name())
    assert len(colors) == len(ModelFormat)
    ids = window.import_paths([SAMPLES / "digits_cnn.onnx", SAMPLES / "digits_cnn.tflite"])
    icons = [window.browser.item_for(i).icon(0) for i in ids]
    assert not any(icon.isNull() for icon in icons)
    assert icons[0].pixmap(16).toImage() != icons[1].pixmap(16).toImage()


def test_latency_histogram_keeps_outliers_in_its_last_bin(qtbot) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from edgestudio.gui.charts import LiveLatencyChart

    chart = LiveLatencyChart()
    qtbot.addWidget(chart)
    chart.start("job", "synthetic")
    rng = np.random.default_rng(0)
    values = list(0.1 + rng.gamma(2.0, 0.01, 2000)) + [10.0, 12.0, 15.0]  # three 100x stalls
    chart.add_samples("job", list(enumerate(values)))
    chart._update_stats.flush()
    edges, counts = chart.hist_curve.getData()
    assert edges[-1] < 1.0  # the distribution is not squeezed into one bar by the stalls
    assert counts.sum() == len(values)  # yet every sample is counted
    assert "3 more above" in chart.hist.getAxis("bottom").labelText
    p50, p99 = float(np.percentile(values, 50)), float(np.percentile(values, 99))
    assert abs(chart.p50_line.value() - p50) < 1e-3 and abs(chart.p99_line.value() - p99) < 2e-3
    chart.start("next", "another")  # a new benchmark starts from an empty chart
    assert chart.hist_curve.getData()[0] is None or len(chart.hist_curve.getData()[0]) == 0
    assert not chart.p50_line.isVisible() and chart.stats["p50"].text() == "-"


def test_overlapping_scatter_points_share_a_label() -> None:
    from edgestudio.gui.comparison_view import _nearby_groups

    pts = [(0.009, 0.978), (0.035, 0.978), (0.0352, 0.978), (0.043, 0.978), (0.036, 0.95)]
    assert _nearby_groups(pts) == [[0], [1, 2], [3], [4]]
    assert _nearby_groups([(1.0, 0.9)]) == [[0]] and _nearby_groups([]) == []
    # a comparison's screenshot: five rows within 0.004 ms at the same top-1 wrote "#2, #3, #4" and "#5, #6" into
    # each other: one label
    same = [(0.0141, 0.9778), (0.0503, 0.9778), (0.0503, 0.9778), (0.0511, 0.9778), (0.0526, 0.9778),
            (0.0543, 0.9778), (0.0667, 0.9778)]
    assert _nearby_groups(same) == [[0], [1, 2, 3, 4, 5], [6]]


def test_the_accuracy_plot_fits_its_points_after_an_empty_one(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A comparison whose first rows had no top-1 drew the empty plot's fixed 0..1 range, which stayed when the
    measured rows came: seven points squeezed into the left 7 %. The range follows the points."""
    from edgestudio.gui.comparison_view import ComparisonView

    view = ComparisonView()
    qtbot.addWidget(view)
    rows = [dict(model=f"m{i}.onnx", runtime="onnxruntime", device="CPU", p50_ms=p, p99_ms=2 * p, size_bytes=1000,
                 accuracy=0.9778)
            for i, p in enumerate([0.0141, 0.0503, 0.0667])]
    view.set_rows([{k: v for k, v in r.items() if k != "accuracy"} for r in rows])
    assert "labeled" in view.no_accuracy.toPlainText()
    view.set_rows(rows)
    (x0, x1), _ = view.scatter_plot.viewRange()
    assert 0.0 <= x0 < 0.0141 and 0.0667 < x1 < 0.1, (x0, x1)


def test_a_label_goes_under_its_point_when_another_sits_just_above() -> None:
    """The comparison of a screenshot: #3 (0.093 ms, 0.9756) just under #4 (0.0933 ms, 0.9778): #3's label above
    would cover #4's point, so it goes under; #4's and the distant points' labels stay above."""
    from edgestudio.gui.comparison_view import _labels_below, _nearby_groups

    pts = [(0.028, 0.9778), (0.074, 0.9778), (0.093, 0.9756), (0.0933, 0.9778), (0.159, 0.9778)]
    groups = _nearby_groups(pts)
    assert groups == [[0], [1], [2], [3], [4]]
    assert _labels_below(pts, groups, y_span=0.0022 + 2.2 * 0.005) == [False, False, True, False, False]
    assert _labels_below([], [], y_span=1.0) == []


def test_charts_follow_a_palette_change(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The system switching to dark changes the application's palette: the charts repaint in it."""
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    from edgestudio.gui.charts import LiveLatencyChart
    from edgestudio.gui.comparison_view import ComparisonView

    live, comparison = LiveLatencyChart(), ComparisonView()
    qtbot.addWidget(live)
    qtbot.addWidget(comparison)
    app = QApplication.instance()
    light = app.palette()
    dark = QPalette(light)
    dark.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
    dark.setColor(QPalette.ColorRole.Text, QColor("#e0e0e0"))
    try:
        app.setPalette(dark)
        qtbot.waitUntil(lambda: live.view.backgroundBrush().color().name() == "#1e1e1e")
        assert comparison.scatter_plot.backgroundBrush().color().name() == "#1e1e1e"
        assert live.plot.getAxis("left").textPen().color().name() == "#e0e0e0"
        assert comparison.bars.getPlotItem().getAxis("bottom").textPen().color().name() == "#e0e0e0"
    finally:
        app.setPalette(light)
        import pyqtgraph as pg

        pg.setConfigOptions(background=light.color(QPalette.ColorRole.Base),
                            foreground=light.color(QPalette.ColorRole.Text))


def test_importing_a_large_model_does_not_block_the_window(qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Hashing and copying happen off the GUI thread; the browser updates when they are done."""
    import time

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((6000, 4000)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "big",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4000])], [w])
    big = tmp_path / "big.onnx"
    onnx.save(helper.make_model(graph), big)  # ~96 MB
    t0 = time.perf_counter()
    window.import_paths_async([big])
    t_async = time.perf_counter() - t0
    qtbot.waitUntil(lambda: window.browser.count() == 1, timeout=60_000)
    twin = tmp_path / "big_copy.onnx"
    twin.write_bytes(big.read_bytes()[:-1] + big.read_bytes()[-1:])
    t0 = time.perf_counter()
    window.import_paths([twin])  # the same work on the calling thread, for scale
    t_sync = time.perf_counter() - t0
    assert t_async < t_sync / 5, (t_async, t_sync)
