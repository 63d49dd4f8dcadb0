"""The browser's variant of a full-integer model: uint8 input and output, batch fixed at one.

LiteRT.js takes float32, int32 and uint8 tensors only (an int8 input is refused) and its
compiled models want static shapes. The variant is the same graph with a QUANTIZE op on
each side: uint8 pixels (zero point + 128) -> the model's int8 input, and its int8 output
-> uint8. Both are exact (same scale, zero points 128 apart), so the variant gives the int8
model's answers bit for bit. Rewritten with `tflite_edit`; no converter and no training.
Metadata entries (the `edgedigits` card) are kept.
"""

from __future__ import annotations

from edgedigits.export import tflite_edit
from firmware_harness.errors import UserError

QUANTIZE = 114  # BuiltinOperator.QUANTIZE
INT8, UINT8 = 9, 3  # TensorType


def web_variant(content: bytes) -> bytes:
    """`content` (a full-integer .tflite with int8 input and output) with uint8 ends and batch 1."""
    schema = tflite_edit.schema()
    model = tflite_edit.load(content)
    graph = model.subgraphs[0]
    ends = [graph.tensors[i] for i in (*graph.inputs, *graph.outputs)]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1 or any(t.type != INT8 for t in ends):
        raise UserError("the browser page runs full-integer models with one int8 input and output; "
                        "export with --int8 (and the default --io int8)")
    batch_one(graph)
    opcode = opcode_index(schema, model, QUANTIZE)
    old_in, old_out = graph.inputs[0], graph.outputs[0]
    new_in = uint8_twin(schema, model, graph, old_in, "input_uint8")
    new_out = uint8_twin(schema, model, graph, old_out, "output_uint8")
    graph.operators.insert(0, quantize_op(schema, opcode, new_in, old_in))
    graph.operators.append(quantize_op(schema, opcode, old_out, new_out))
    set_ends(model, new_in, new_out)
    return tflite_edit.pack(model)


def batch_one(graph) -> None:
    """Static shapes: batch 1 wherever the signature leaves it open."""
    for tensor in graph.tensors:
        if tensor.shapeSignature is not None and len(tensor.shapeSignature) and tensor.shapeSignature[0] == -1:
            tensor.shapeSignature[0] = 1
            tensor.shape[0] = 1


def set_ends(model, new_in: int, new_out: int) -> None:
    """Make tensors `new_in` and `new_out` the first subgraph's input and output, in its signatures too."""
    model.subgraphs[0].inputs, model.subgraphs[0].outputs = [new_in], [new_out]
    for signature in model.signatureDefs or []:
        for entry in signature.inputs or []:
            entry.tensorIndex = new_in
        for entry in signature.outputs or []:
            entry.tensorIndex = new_out


def new_tensor(schema, model, graph, shape: list[int], kind: int, name: str, scale: list[float],
               zero_point: list[int], data=None, axis: int = 0) -> int:
    """A new tensor (constant if `data`, a numpy array, is given) with its quantization; its index."""
    quantization = schema.QuantizationParametersT()
    quantization.scale, quantization.zeroPoint, quantization.quantizedDimension = scale, zero_point, axis
    tensor = schema.TensorT()
    tensor.shape, tensor.shapeSignature = list(shape), list(shape)
    tensor.type, tensor.name, tensor.quantization = kind, name, quantization
    buffer = schema.BufferT()
    if data is not None:
        buffer.data = data.tobytes()
    model.buffers.append(buffer)
    tensor.buffer = len(model.buffers) - 1
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def uint8_twin(schema, model, graph, index: int, name: str) -> int:
    """A new uint8 tensor holding the same real values as int8 tensor `index`; its index."""
    source = graph.tensors[index]
    return new_tensor(schema, model, graph, list(source.shape), UINT8, name, list(source.quantization.scale),
                      [int(z) + 128 for z in source.quantization.zeroPoint])


def opcode_index(schema, model, builtin: int, version: int = 1) -> int:
    """The index of the model's operator code for `builtin`, added if the model has none."""
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def quantize_op(schema, opcode: int, source: int, target: int):
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, [source], [target]
    op.builtinOptionsType = schema.BuiltinOptions.QuantizeOptions
    op.builtinOptions = schema.QuantizeOptionsT()
    return op
