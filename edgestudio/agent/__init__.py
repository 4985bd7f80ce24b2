"""The device agent: a small process on an edge device (a Raspberry Pi, a Jetson, any host) that runs EdgeStudio's
bench, eval, inspect and parity jobs on uploaded models and streams what it measures back to the studio.

It needs numpy, ``websockets`` and whichever runtimes the device has (onnxruntime, ai-edge-litert, openvino): no
TensorFlow, no Qt. The studio's side is :mod:`edgestudio.execution.remote`.
"""
