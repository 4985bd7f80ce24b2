"""ExecuTorch programs of the digits CNN whose INT8 loss starts in a known layer (run with the ``executorch``
environment's Python).

The first convolution's channel 0 is made dead (zero weights, bias -1: ReLU gives 0 for every input), and the second
convolution's weights reading that channel are set to 100: the float function does not see them (they multiply
zeros), but INT8 does: their range sets the quantization step of every weight of ``c2`` (per channel too), which
rounds the real weights away. Written: that float model (``broken.pt2``), its FP32 and INT8 programs lowered without
a delegate (every op's output in ETDump) and with XNNPACK (one block each).

    python tests/helpers/executorch_programs.py DIGITS_NET.pt2 CALIB.npz OUT_DIR   # CALIB.npz: x [N,8,8,1]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from torch_digits import DigitsNet  # noqa: E402


def main(pt2: str, calib: str, out: str) -> int:
    import executorch.kernels.quantized  # noqa: F401 - quantize/dequantize, for programs without a delegate
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model = DigitsNet()
    model.load_state_dict(torch.export.load(pt2).module().state_dict())
    with torch.no_grad():
        model.c1.weight[0] = 0.0
        model.c1.bias[0] = -1.0
        model.c2.weight[:, 0] = 100.0
    model.eval()
    x = np.array(np.load(calib)["x"].transpose(0, 3, 1, 2)[:64], dtype=np.float32, order="C")
    example = (torch.from_numpy(x[:1]),)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, ep: torch.export.ExportedProgram, xnnpack: bool = False) -> None:
        lowered = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()] if xnnpack else None)
        (folder / name).write_bytes(lowered.to_executorch().buffer)

    fp32 = torch.export.export(model, example)
    torch.export.save(fp32, folder / "broken.pt2")
    write("fp32.pte", fp32)
    write("fp32_xnnpack.pte", fp32, xnnpack=True)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    m = prepare_pt2e(torch.export.export(model, example).module(), quantizer)
    for k in range(len(x)):
        m(torch.from_numpy(x[k:k + 1]))
    int8 = torch.export.export(convert_pt2e(m), example)
    write("int8.pte", int8)
    write("int8_xnnpack.pte", int8, xnnpack=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
