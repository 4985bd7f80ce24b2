"""The PyTorch digits CNN of edgestudio/samples_torch.py (run with the ``torch`` environment's Python), saved both ways:
an ExportedProgram (``torch.export.save``, .pt2) and TorchScript (``torch.jit.save``, .pt); plus, for the
refusal tests, a pickled module and a state_dict (``torch.save``).

    python tests/helpers/torch_digits.py TRAIN.npz OUT_DIR     # TRAIN.npz: x [N,1,8,8] float32, y [N]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from edgestudio.samples_torch import DigitsNet, train  # noqa: E402,F401 - DigitsNet: the executorch helpers' model


def main(train_npz: str, out: str) -> int:
    model, example, acc = train(train_npz)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    torch.export.save(torch.export.export(model, (example,)), folder / "digits_net.pt2")
    torch.jit.save(torch.jit.trace(model, (example,)), folder / "digits_net.pt")
    torch.save(model, folder / "digits_net_pickled.pt")
    torch.save(model.state_dict(), folder / "digits_net_weights.pt")
    print(f"trained: train top-1 {acc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
