"""The app variant of a full-integer digit model, for MediaPipe Tasks' ImageClassifier and the Task Library:
RGB uint8 input as a camera gives it (dark ink on light paper), probabilities out, batch 1.

ImageClassifier takes batch 1 and RGB only, and resizes the app's picture to the model's 28x28. The variant
is the int8 graph with, in front, a QUANTIZE op (uint8 -> int8, exact) and a 1x1 CONV_2D that makes the
model's input from the three channels: 255 - (38 R + 75 G + 15 B) / 128, bright ink on black. Its weights
sum to 128, so for a gray pixel (R = G = B) that is exactly 255 - R, bit for bit the value the int8 model
is given (for colour pixels it rounds to the nearest level). Behind, SOFTMAX (int8, scale 1/256, as TFLite
requires) and a QUANTIZE to uint8: the output is the probability of each digit in 1/256 steps, so an app
can threshold it. Rewritten with `tflite_edit`; no converter and no training.
"""

from __future__ import annotations

import numpy as np

from edgedigits.export import tflite_edit
from edgedigits.export.web_model import (INT8, QUANTIZE, UINT8, batch_one, new_tensor, opcode_index, quantize_op,
                                         set_ends)
from firmware_harness.errors import UserError
from firmware_harness.tflite_file import CONV_2D

SOFTMAX = 25  # BuiltinOperator
INT32 = 2  # TensorType
GRAY_WEIGHTS = (38, 75, 15)  # R, G, B in 1/128ths (BT.601's 0.299, 0.587, 0.114, summing to exactly 128)
SOFTMAX_SCALE, SOFTMAX_ZERO_POINT = 1 / 256, -128


def mobile_variant(content: bytes) -> bytes:
    """`content` (full-integer, one int8 28x28x1 input and int8 logits out) as RGB uint8 in, uint8
    probabilities out, batch 1."""
    schema = tflite_edit.schema()
    model = tflite_edit.load(content)
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1 or any(
            graph.tensors[i].type != INT8 for i in (*graph.inputs, *graph.outputs)):
        raise UserError("the app variant is made from full-integer models with one int8 input and output; "
                        "export with --int8 (and the default --io int8)")
    batch_one(graph)
    old_in, old_out = graph.inputs[0], graph.outputs[0]
    source = graph.tensors[old_in]
    if list(source.shape[1:]) != [28, 28, 1] or list(source.quantization.zeroPoint) != [-128]:
        raise UserError("the app variant needs a 28x28x1 input quantized as edgedigits models are (pixel - 128)")
    scale = list(source.quantization.scale)
    shape = [1, 28, 28, 3]
    rgb = new_tensor(schema, model, graph, shape, UINT8, "image_rgb_uint8", scale, [0])
    rgb_int8 = new_tensor(schema, model, graph, shape, INT8, "image_rgb_int8", scale, [-128])
    weights = new_tensor(schema, model, graph, [1, 1, 1, 3], INT8, "to_gray_inverted_weights", [1 / 128], [0],
                         -np.array(GRAY_WEIGHTS, np.int8).reshape(1, 1, 1, 3))
    # bias = 1.0 in real terms (the inversion's 255), at the accumulator's scale input * weight = 1/(255*128)
    bias = new_tensor(schema, model, graph, [1], INT32, "to_gray_inverted_bias", [scale[0] / 128], [0],
                      np.array([int(round(1.0 / (scale[0] / 128)))], np.int32))
    probabilities = new_tensor(schema, model, graph, list(graph.tensors[old_out].shape), INT8, "probabilities",
                               [SOFTMAX_SCALE], [SOFTMAX_ZERO_POINT])
    out = new_tensor(schema, model, graph, list(graph.tensors[old_out].shape), UINT8, "probabilities_uint8",
                     [SOFTMAX_SCALE], [0])
    quantize = opcode_index(schema, model, QUANTIZE)
    graph.operators[:0] = [quantize_op(schema, quantize, rgb, rgb_int8),
                           _to_gray(schema, opcode_index(schema, model, CONV_2D, 3), rgb_int8, weights, bias, old_in)]
    graph.operators += [_softmax(schema, opcode_index(schema, model, SOFTMAX, 2), old_out, probabilities),
                        quantize_op(schema, quantize, probabilities, out)]
    set_ends(model, rgb, out)
    return tflite_edit.pack(model)


def _to_gray(schema, opcode: int, source: int, weights: int, bias: int, target: int):
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, [source, weights, bias], [target]
    op.builtinOptionsType = schema.BuiltinOptions.Conv2DOptions
    options = schema.Conv2DOptionsT()
    options.padding, options.strideW, options.strideH = schema.Padding.VALID, 1, 1
    options.dilationWFactor = options.dilationHFactor = 1
    options.fusedActivationFunction = schema.ActivationFunctionType.NONE
    op.builtinOptions = options
    return op


def _softmax(schema, opcode: int, source: int, target: int):
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, [source], [target]
    op.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
    options = schema.SoftmaxOptionsT()
    options.beta = 1.0
    op.builtinOptions = options
    return op
