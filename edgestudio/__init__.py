"""EdgeStudio: take a trained model to an edge device (inspect, convert, optimize, benchmark, package).

Importing this package is cheap: no runtime (tensorflow, openvino, onnxruntime) and no Qt is imported here.
"""

__version__ = "0.1.0"
