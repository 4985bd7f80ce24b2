"""ExecuTorch programs (.pte): read with ExecuTorch's own loader, in its environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.core.errors import ModelFormatError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.modelinfo import ModelInfo, TensorSpec

#: ExecuTorch's ScalarType codes (c10's) -> numpy dtype names
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                7: "float64", 11: "bool"}


def method_specs(meta: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """A method's inputs and outputs as tensor specs, from its MethodMeta (sizes and dtypes are static)."""
    def spec(prefix: str, i: int, t: Any) -> TensorSpec:
        return TensorSpec(f"{prefix}_{i}", [int(d) for d in t.sizes()], SCALAR_TYPES.get(int(t.dtype()), "float32"))

    return ([spec("input", i, meta.input_tensor_meta(i)) for i in range(meta.num_inputs())],
            [spec("output", i, meta.output_tensor_meta(i)) for i in range(meta.num_outputs())])


def load_program(path: str | Path) -> Any:
    from executorch.runtime import Runtime as EtRuntime

    try:  # the quantized kernels (quantize/dequantize): a program lowered without a delegate calls them
        import executorch.kernels.quantized  # noqa: F401
    except ImportError:
        pass
    try:
        return EtRuntime.get().load_program(str(path))
    except Exception as exc:  # noqa: BLE001 - its own words, one line
        raise ModelFormatError(path, f"ExecuTorch cannot load it: {' '.join(str(exc).split())[:300]}") from None


def _inspect_pte(p: Path) -> ModelInfo:
    """Methods, inputs and outputs from the program's metadata (no op list: the program holds delegate blobs)."""
    import importlib.metadata

    program = load_program(p)
    inputs, outputs = method_specs(program.metadata("forward"))
    methods = sorted(program.method_names)
    return ModelInfo(ModelFormat.PTE, str(p), 0, inputs, outputs, {}, None, None, None,
                     f"executorch {importlib.metadata.version('executorch')} (methods: {', '.join(methods)})")
