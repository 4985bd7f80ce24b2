"""The digits CNN in PyTorch, run with the ``torch`` environment's Python (the app never imports this module: its
venv has no torch). Trained on the same split as the Keras sample and saved as an ExportedProgram,
``resources/samples/digits_cnn.pt2`` (``python -m edgestudio.samples --torch``). The tests also save it as
TorchScript, a pickled module and a state_dict (tests/helpers/torch_digits.py), which EdgeStudio refuses to open.

    python -m edgestudio.samples_torch TRAIN.npz OUT_DIR [NAME]     # TRAIN.npz: x [N,1,8,8] float32, y [N]
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


def train(path: str) -> tuple[DigitsNet, torch.Tensor, float]:
    """Full-batch Adam, seeded (a few seconds on a CPU): the model in eval mode, one example input, train top-1."""
    torch.manual_seed(0)
    data = np.load(path)
    x, y = torch.from_numpy(data["x"].astype(np.float32)), torch.from_numpy(data["y"].astype(np.int64))
    model = DigitsNet()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(model(x) + 1e-9), y)
        loss.backward()
        opt.step()
    model.eval()
    return model, x[:1], float((model(x).argmax(1) == y).float().mean())


def main(train_npz: str, out: str, name: str = "digits_cnn") -> int:
    model, example, acc = train(train_npz)
    Path(out).mkdir(parents=True, exist_ok=True)
    torch.export.save(torch.export.export(model, (example,)), Path(out) / f"{name}.pt2")
    print(f"{name}.pt2: train top-1 {acc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
