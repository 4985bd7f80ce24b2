"""The application layer over the executors: the job manager (jobs recorded in a workspace), pipelines that cross
environments (PyTorch -> ONNX -> INT8, a microcontroller build), comparisons and recipes. The CLI and the studio
both go through it."""
