"""Stage 1 of `oko port`: check the ONNX, fix its input shapes, simplify it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oko.core.errors import ConfigError


@dataclass(frozen=True)
class PreparedOnnx:
    path: Path
    input_names: list[str]
    input_shapes: dict[str, tuple[int, ...]]
    output_names: list[str]
    opset: int


def parse_input_shapes(values: list[str] | None) -> dict[str, tuple[int, ...]]:
    """``--input-shape images=1,3,640,640`` (or ``1,3,640,640`` for a one-input model)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for value in values or []:
        name, _, dims = value.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(","))
        except ValueError:
            shape = ()
        if not shape or any(d <= 0 for d in shape):
            raise ConfigError(f"--input-shape {value!r}: expected [NAME=]D1,D2,... positive integers")
        shapes[name or "*"] = shape
    return shapes


def _dims(value_info) -> list[int | str]:
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return dims


def prepare_onnx(src: Path, dst: Path, shapes: dict[str, tuple[int, ...]],
                 default_shape: tuple[int, ...] | None = None) -> PreparedOnnx:
    """Check ``src``, give every input a fixed shape, simplify, and save to ``dst``.

    ``shapes`` come from ``--input-shape`` (by name, or ``"*"`` for the only input);
    ``default_shape`` (from the manifest) fills the first input when nothing else does.
    A dynamic axis left unresolved is an error naming the input.
    """
    import onnx
    import onnxslim

    try:
        model = onnx.load(str(src))
    except Exception as exc:  # protobuf raises various errors on non-ONNX bytes
        raise ConfigError(f"{src}: not an ONNX model ({type(exc).__name__})") from exc
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{src}: invalid ONNX model ({first[:200]})") from exc
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    fixed: dict[str, tuple[int, ...]] = {}
    for index, value_info in enumerate(inputs):
        dims = _dims(value_info)
        wanted = shapes.get(value_info.name) or (shapes.get("*") if len(inputs) == 1 else None)
        if wanted is None and index == 0 and default_shape is not None:
            wanted = tuple(d if isinstance(d, int) else default_shape[i]
                           for i, d in enumerate(dims)) if len(dims) == len(default_shape) else None
        if wanted is None:
            if any(not isinstance(d, int) for d in dims):
                raise ConfigError(
                    f"{src}: input {value_info.name!r} has a dynamic shape {dims}",
                    f"pass --input-shape {value_info.name}=" + ",".join(
                        str(d) if isinstance(d, int) else "N" for d in dims))
            wanted = tuple(int(d) for d in dims)
        if len(wanted) != len(dims) or any(isinstance(d, int) and d != w
                                           for d, w in zip(dims, wanted, strict=False)):
            raise ConfigError(f"{src}: input {value_info.name!r} has shape {dims}, "
                              f"which does not fit {list(wanted)}")
        fixed[value_info.name] = wanted
    unknown = set(shapes) - set(fixed) - {"*"}
    if unknown:
        raise ConfigError(f"--input-shape names {sorted(unknown)}, model inputs are {sorted(fixed)}")
    try:
        slim = onnxslim.slim(model, input_shapes=[f"{k}:{','.join(map(str, v))}"
                                                   for k, v in fixed.items()])
    except Exception as exc:
        raise ConfigError(f"{src}: simplifying failed ({str(exc).splitlines()[0][:200]})") from exc
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(slim, str(dst))
    opset = max((o.version for o in slim.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return PreparedOnnx(dst, list(fixed), fixed, [o.name for o in slim.graph.output], opset)
