"""A small PyTorch CNN trained on the 8x8 digits (run with the ``torch`` environment's Python), saved both ways:
an ExportedProgram (``torch.export.save``, .pt2) and TorchScript (``torch.jit.save``, .pt); plus, for the
refusal tests, a pickled module and a state_dict (``torch.save``).

    python tests/helpers/torch_digits.py TRAIN.npz OUT_DIR     # TRAIN.npz: x [N,1,8,8] float32, y [N]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch


class DigitsNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c1(x))
        x = torch.nn.functional.max_pool2d(torch.relu(self.c2(x)), 2)
        return torch.softmax(self.fc(x.flatten(1)), -1)


def main(train: str, out: str) -> int:
    torch.manual_seed(0)
    data = np.load(train)
    x, y = torch.from_numpy(data["x"].astype(np.float32)), torch.from_numpy(data["y"].astype(np.int64))
    model = DigitsNet()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):  # full-batch: a few seconds on a CPU
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(model(x) + 1e-9), y)
        loss.backward()
        opt.step()
    model.eval()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    example = (x[:1],)
    torch.export.save(torch.export.export(model, example), folder / "digits_net.pt2")
    torch.jit.save(torch.jit.trace(model, example), folder / "digits_net.pt")
    torch.save(model, folder / "digits_net_pickled.pt")
    torch.save(model.state_dict(), folder / "digits_net_weights.pt")
    acc = float((model(x).argmax(1) == y).float().mean())
    print(f"trained: loss {float(loss):.3f}, train top-1 {acc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
