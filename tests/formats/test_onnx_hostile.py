"""Hostile and corrupt ONNX files: every one is refused with one ArchcostError whose message is a
single short line naming the file's culprit (node, initializer, input); the CLI prints it as one
``archcost: error:`` line and exits 2. Nothing is allocated for sizes a file merely declares,
nothing outside the model's directory is read, and constant folding never leaks a numpy
warning or a ZeroDivisionError."""

import os
import pathlib
import warnings

import numpy as np
import pytest

from archcost import cli, formats
from archcost.errors import ArchcostError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

FLOAT = TensorProto.FLOAT
MB_NAME = "n" * 1_000_000  # a 1-MB name
NL_NAME = "evil\nname\r\nhere"


# ---- building models -------------------------------------------------------------------------
def node(op_type, inputs, outputs, name=None, domain=None, **attrs):
    outputs = [outputs] if isinstance(outputs, str) else outputs
    return helper.make_node(op_type, inputs, outputs, name=name or outputs[0], domain=domain, **attrs)


def vinfo(name, shape, elem=FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def arr(name, value, dtype=None):
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def raw_tensor(name, dims, data_type=FLOAT, raw=None, **fields):
    """A TensorProto built by hand (helper.make_tensor would check what we want to corrupt)."""
    t = TensorProto(name=name, data_type=data_type, dims=list(dims))
    if raw is not None:
        t.raw_data = raw
    for key, values in fields.items():
        getattr(t, key).extend(values)
    return t


def external(name, dims, location, offset=None, length=None):
    t = TensorProto(name=name, data_type=FLOAT, dims=list(dims), data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            entry = t.external_data.add()
            entry.key, entry.value = key, str(value)
    return t


def model(nodes, inits=(), inputs=None, outputs=("y",), opset=13, extra_opsets=()):
    inputs = [vinfo("input", [1, 3, 8, 8])] if inputs is None else inputs
    graph = helper.make_graph(nodes, "net", inputs, [vinfo(o, None) for o in outputs], initializer=list(inits))
    opsets = [helper.make_opsetid("", opset)] if opset is not None else []
    return helper.make_model(graph, opset_imports=opsets + [helper.make_opsetid(d, v) for d, v in extra_opsets])


def write(tmp_path, m, name="m.onnx"):
    path = pathlib.Path(tmp_path) / name
    path.write_bytes(m if isinstance(m, bytes) else m.SerializeToString())
    return path


def conv_model(**kw):
    """input 1x3x8x8 -> Conv (4 out, 3x3) -> y, with overrides for the pieces a case corrupts."""
    w = kw.pop("w", arr("w", np.zeros((4, 3, 3, 3), np.float32)))
    attrs = kw.pop("attrs", {"kernel_shape": [3, 3]})
    return model([node("Conv", ["input", w.name], "y", name=kw.pop("name", "conv"), **attrs)], [w], **kw)


def pad_model(pads, value=None, axes=None, mode="constant", opset=13):
    """input 1x3x8x8 -> Pad (pads, and a constant_value and axes when given) -> y."""
    inits = [arr("p", pads, None if isinstance(pads, np.ndarray) else np.int64)]
    ins = ["input", "p"]
    if value is not None or axes is not None:
        ins.append("v" if value is not None else "")
        if value is not None:
            inits.append(arr("v", value, None if isinstance(value, np.ndarray) else np.float32))
    if axes is not None:
        ins.append("a")
        inits.append(arr("a", axes, np.int64))
    return model([node("Pad", ins, "y", name="pad0", mode=mode)], inits, opset=opset)


def good_model():
    return model([node("Relu", ["input"], "a", name="relu"), node("Flatten", ["a"], "y", name="flat")])


def unreadable(tmp_path):
    path = write(tmp_path, good_model())
    path.chmod(0)
    return path


def external_ok(tmp_path):
    (tmp_path / "w.bin").write_bytes(np.zeros((4, 3, 3, 3), np.float32).tobytes())
    return write(tmp_path, conv_model(w=external("w", (4, 3, 3, 3), "w.bin", 0, 432)))


def symlink_out(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"\0" * 432)
    inner = tmp_path / "model"
    inner.mkdir()
    (inner / "w.bin").symlink_to(outside / "secret.bin")
    return write(inner, conv_model(w=external("w", (4, 3, 3, 3), "w.bin")))


def short_external(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0" * 100)
    return write(tmp_path, conv_model(w=external("w", (4, 3, 3, 3), "w.bin", 0, 432)))


def shape_path(fold_nodes, inits, shape_tensor="shape"):
    """Folded constant arithmetic feeding a Reshape's target shape (so the fold matters)."""
    return model(fold_nodes + [node("Reshape", ["input", shape_tensor], "y", name="reshape")], inits)


def dims_chain(*nodes_, inits=()):
    """Shape(input) -> Gather(1) -> ... : the exporters' pattern of shape arithmetic on int64."""
    return shape_path([node("Shape", ["input"], "s", name="shape_of"),
                       node("Gather", ["s", "i1"], "c", name="gather_c"), *nodes_],
                      [arr("i1", 1, np.int64), *inits], shape_tensor=nodes_[-1].output[0])


def many_unknown(count):
    nodes = [node("Relu", ["input"], "x0", name="start")]
    nodes += [node("Mystery", [f"x{k}"], f"x{k + 1}", name=f"m{k}") for k in range(count)]
    nodes.append(node("Relu", [f"x{count}"], "y", name="end"))
    return model(nodes)


def long_cycle(count):
    nodes = [node("Add", ["input", f"c{count - 1}"], "c0", name="c0")]
    nodes += [node("Relu", [f"c{k - 1}"], f"c{k}", name=f"c{k}") for k in range(1, count)]
    nodes.append(node("Relu", ["c0"], "y", name="after"))
    return model(nodes)


# name -> (build(tmp_path) -> path, substrings the message must contain)
CASES = {
    # --- the file itself
    "random_bytes": (lambda t: write(t, bytes(range(256)) * 8), ["not a readable ONNX model"]),
    "text_file": (lambda t: write(t, b"hello, I am not a model\n"), ["not a readable ONNX model"]),
    "empty_file": (lambda t: write(t, b""), ["is empty"]),
    "truncated": (lambda t: write(t, conv_model().SerializeToString()[:300]), ["not a readable ONNX model"]),
    "a_tensor_not_a_model": (lambda t: write(t, arr("w", np.zeros(3, np.float32)).SerializeToString()),
                             ["not a readable ONNX model"]),
    "directory": (lambda t: (t / "x.onnx").mkdir() or t / "x.onnx", ["x.onnx", "is a directory"]),
    "missing_path": (lambda t: t / "nowhere.onnx", ["nowhere.onnx", "no such file"]),
    "unreadable": (unreadable, ["cannot read", "Permission denied"]),
    # --- corrupt initializers
    "raw_data_short": (lambda t: write(t, conv_model(w=raw_tensor("w", (4, 3, 3, 3), raw=b"\0" * 10))),
                       ["initializer 'w'", "raw_data holds 10 bytes", "need 432"]),
    "negative_dims": (lambda t: write(t, conv_model(w=raw_tensor("w", (4, -3, 3, 3), raw=b""))),
                      ["initializer 'w'", "negative"]),
    "unknown_data_type": (lambda t: write(t, conv_model(w=raw_tensor("w", (4, 3, 3, 3), 99, raw=b"\0" * 432))),
                          ["initializer 'w'", "data type '99' is not supported"]),
    "string_data_type": (lambda t: write(t, conv_model(w=raw_tensor("w", (2,), TensorProto.STRING,
                                                                    string_data=[b"a", b"b"]))),
                         ["initializer 'w'", "'STRING' is not supported"]),
    "float_data_count": (lambda t: write(t, conv_model(w=raw_tensor("w", (4, 3, 3, 3), float_data=[1.0] * 5))),
                         ["initializer 'w'", "float_data holds 5 values", "declare 108"]),
    "int64_data_count": (lambda t: write(t, shape_path([], [raw_tensor("shape", (3,), TensorProto.INT64,
                                                                      int64_data=[1, 2])])),
                         ["initializer 'shape'", "int64_data holds 2 values"]),
    "huge_dims_with_data": (lambda t: write(t, conv_model(w=raw_tensor("w", (10**6, 10**6, 1, 1), raw=b"\0" * 16))),
                            ["initializer 'w'", "1,000,000,000,000 values"]),
    "huge_dims_shape_only": (lambda t: write(t, conv_model(w=raw_tensor("w", (10**12, 3, 1, 1)),
                                                           attrs={"kernel_shape": [1, 1]})),
                             ["initializer 'w'", "3,000,000,000,000 values", "more than"]),
    "astronomic_dims": (lambda t: write(t, conv_model(w=raw_tensor("w", (2**62, 2**62, 3, 3)))),
                        ["initializer 'w'", "1.91e+38 values", "ARCHCOST_MAX_TENSOR_BYTES"]),
    "dataless_values_needed": (lambda t: write(t, shape_path([], [raw_tensor("shape", (2,), TensorProto.INT64)])),
                               ["node 'reshape' (Reshape)", "initializer 'shape'", "no data"]),
    "duplicate_initializer": (lambda t: write(t, model([node("Relu", ["input"], "y")],
                                                       [arr("w", [1.0]), arr("w", [2.0])])),
                              ["initializer 'w'", "defined twice"]),
    "sparse_initializer": (lambda t: write(t, _with_sparse(conv_model())), ["sparse initializer 'sp'"]),
    "constant_node_corrupt": (lambda t: write(t, shape_path(
        [node("Constant", [], "shape", name="const_shape",
              value=raw_tensor("v", (10**6,), TensorProto.INT64, raw=b"\0" * 8))], [])),
                              ["node 'const_shape' (Constant)", "raw_data holds 8 bytes"]),
    # --- external data
    "external_missing_file": (lambda t: write(t, conv_model(w=external("w", (4, 3, 3, 3), "weights.bin"))),
                              ["initializer 'w'", "'weights.bin' does not exist"]),
    "external_parent_escape": (lambda t: write(t, conv_model(w=external("w", (4, 3, 3, 3), "../../etc/passwd"))),
                               ["initializer 'w'", "'../../etc/passwd' is outside the model's directory"]),
    "external_absolute": (lambda t: write(t, conv_model(w=external("w", (4, 3, 3, 3), "/etc/passwd"))),
                          ["initializer 'w'", "'/etc/passwd' is outside the model's directory"]),
    "external_symlink_out": (symlink_out, ["initializer 'w'", "outside the model's directory"]),
    "external_short_file": (short_external, ["initializer 'w'", "has 100 bytes, fewer than offset 0 + length 432"]),
    "external_bad_offset": (lambda t: write(t, conv_model(w=external("w", (4, 3, 3, 3), "w.bin", "lots"))),
                            ["initializer 'w'", "not integers"]),
    "external_wrong_length": (lambda t: (t / "w.bin").write_bytes(b"\0" * 1000) and write(
        t, conv_model(w=external("w", (4, 3, 3, 3), "w.bin", 0, 1000))), ["initializer 'w'", "length 1,000 bytes"]),
    "external_windows_drive": (lambda t: write(t, conv_model(w=external("w", (4, 3, 3, 3), "C:\\boot.ini"))),
                               ["initializer 'w'", "outside the model's directory"]),
    "external_directory": (lambda t: (t / "sub").mkdir() or write(t, conv_model(w=external("w", (4, 3, 3, 3), "sub"))),
                           ["initializer 'w'", "'sub' is not a regular file"]),
    "external_without_location": (lambda t: write(t, conv_model(w=external("w", (4, 3, 3, 3), None, 0, 432))),
                                  ["initializer 'w'", "without a location"]),
    # --- graph structure
    "unknown_tensor": (lambda t: write(t, model([node("Relu", ["nowhere"], "y", name="r")])),
                       ["node 'r' (Relu)", "input 'nowhere' is not a graph input"]),
    "duplicate_output": (lambda t: write(t, model([node("Relu", ["input"], "a", name="first"),
                                                   node("Sigmoid", ["input"], "a", name="second"),
                                                   node("Relu", ["a"], "y", name="last")])),
                         ["node 'second' (Sigmoid)", "output 'a' is also produced by node 'first'"]),
    "output_overwrites_input": (lambda t: write(t, model([node("Relu", ["input"], "input", name="clobber"),
                                                          node("Relu", ["input"], "y")])),
                                ["node 'clobber' (Relu)", "output 'input' has the name of a graph input"]),
    "cycle": (lambda t: write(t, model([node("Add", ["input", "b"], "a"), node("Relu", ["a"], "b"),
                                        node("Relu", ["b"], "y")])), ["the graph has a cycle: a -> b -> a"]),
    "self_loop": (lambda t: write(t, model([node("Add", ["input", "x"], "x", name="loop"),
                                            node("Relu", ["x"], "y")])), ["cycle", "loop"]),
    "long_cycle": (lambda t: write(t, long_cycle(500)), ["the graph has a cycle", "more nodes"]),
    "no_inputs": (lambda t: write(t, model([node("Relu", ["w"], "y")], [arr("w", np.zeros((1, 3)))], inputs=[])),
                  ["the model has no input"]),
    "no_outputs": (lambda t: write(t, model([node("Relu", ["input"], "y")], outputs=())), ["has no output"]),
    "duplicate_input": (lambda t: write(t, model([node("Relu", ["input"], "y")],
                                                 inputs=[vinfo("input", [1, 3, 8, 8]), vinfo("input", [1, 3, 8, 8])])),
                        ["input 'input'", "declares it twice"]),
    "non_tensor_input": (lambda t: write(t, model([node("Relu", ["input"], "y")], inputs=[
        helper.make_value_info("input", helper.make_sequence_type_proto(helper.make_tensor_type_proto(FLOAT, [1])))])),
                         ["input 'input'", "not a tensor"]),
    "symbolic_dims": (lambda t: write(t, model([node("Relu", ["input"], "y")],
                                               inputs=[vinfo("input", ["N", 3, "H", "W"])])),
                      ["input 'input'", "dimension 'H'", "--input"]),
    "zero_dim": (lambda t: write(t, model([node("Relu", ["input"], "y")], inputs=[vinfo("input", [1, 3, 0, 8])])),
                 ["input 'input'", "dimension 0", "--input"]),
    "negative_dim": (lambda t: write(t, model([node("Relu", ["input"], "y")],
                                              inputs=[vinfo("input", [1, 3, -5, 8])])),
                     ["input 'input'", "dimension -5", "--input"]),
    "no_input_shape": (lambda t: write(t, model([node("Relu", ["input"], "y")], inputs=[vinfo("input", None)])),
                       ["input 'input'", "no shape", "--input"]),
    "transpose_not_permutation": (lambda t: write(t, model([node("Transpose", ["input"], "y", name="t",
                                                                 perm=[0, 1, 1, 2])])),
                                  ["node 't' (Transpose)", "not a permutation"]),
    "transpose_wrong_length": (lambda t: write(t, model([node("Transpose", ["input"], "y", name="t", perm=[0, 2, 1])])),
                               ["node 't' (Transpose)", "not a permutation of the 4 axes"]),
    "transpose_moves_batch": (lambda t: write(t, model([node("Transpose", ["input"], "y", name="t",
                                                             perm=[1, 0, 2, 3])])),
                              ["Transpose (t: perm (1, 0, 2, 3) moves the batch axis)"]),
    "reshape_wrong_size": (lambda t: write(t, shape_path([], [arr("shape", [1, 7], np.int64)])),
                           ["'reshape'", "cannot fit 1x3x8x8 into (7,)"]),
    "reshape_two_minus_one": (lambda t: write(t, shape_path([], [arr("shape", [1, -1, -1], np.int64)])),
                              ["node 'reshape' (Reshape)", "at most one -1"]),
    "reshape_negative": (lambda t: write(t, shape_path([], [arr("shape", [1, -5, 4], np.int64)])),
                         ["node 'reshape' (Reshape)", "entries must be >= 0"]),
    "reshape_float_target": (lambda t: write(t, shape_path([], [arr("shape", [1, np.nan], np.float32)])),
                             ["node 'reshape' (Reshape)", "where integers are needed"]),
    "reshape_zero_beyond_rank": (lambda t: write(t, shape_path([], [arr("shape", [1, 3, 8, 8, 0], np.int64)])),
                                 ["node 'reshape' (Reshape)", "copies (0) an axis"]),
    "concat_axis_out_of_range": (lambda t: write(t, model([node("Concat", ["input", "input"], "y", name="cat",
                                                                axis=7)])), ["'cat'", "axis 7"]),
    "softmax_axis_out_of_range": (lambda t: write(t, model([node("Softmax", ["input"], "y", name="sm", axis=-9)])),
                                  ["'sm'", "axis -9"]),
    "squeeze_axis_out_of_range": (lambda t: write(t, model([node("Squeeze", ["input", "ax"], "y", name="sq")],
                                                           [arr("ax", [9], np.int64)])),
                                  ["node 'sq' (Squeeze)", "axes [9]: 9 is out of range for a 4-d tensor"]),
    "squeeze_axis_not_one": (lambda t: write(t, model([node("Squeeze", ["input", "ax"], "y", name="sq")],
                                                      [arr("ax", [2], np.int64)])),
                             ["node 'sq' (Squeeze)", "cannot squeeze axis 2 of size 8"]),
    "reducemean_axes_out_of_range": (lambda t: write(t, model([node("ReduceMean", ["input"], "y", name="mean",
                                                                    axes=[6, 7])])),
                                     ["node 'mean' (ReduceMean)", "axes [6, 7]: 6 is out of range"]),
    "conv_kernel_too_large": (lambda t: write(t, conv_model(w=arr("w", np.zeros((4, 3, 9, 9), np.float32)),
                                                            attrs={"kernel_shape": [9, 9]})), ["'conv'", "kernel 9"]),
    "conv_group_mismatch": (lambda t: write(t, conv_model(w=arr("w", np.zeros((4, 1, 3, 3), np.float32)),
                                                          attrs={"group": 2})),
                            ["node 'conv' (Conv)", "group 2 needs 2 input channels, the input has 3"]),
    "conv_out_not_divisible": (lambda t: write(t, model([node("Conv", ["input", "w"], "y", name="conv", group=3)],
                                                        [arr("w", np.zeros((4, 1, 3, 3), np.float32))])),
                               ["node 'conv' (Conv)", "out_channels 4 is not divisible by groups 3"]),
    "conv_group_zero": (lambda t: write(t, conv_model(attrs={"group": 0})), ["node 'conv' (Conv)", "group 0"]),
    "conv_group_string": (lambda t: write(t, conv_model(attrs={"group": "two"})), ["node 'conv' (Conv)", "group"]),
    "conv_group_float": (lambda t: write(t, conv_model(attrs={"group": 2.5})),
                         ["node 'conv' (Conv)", "malformed attribute 'group' (expected an integer, got 2.5)"]),
    "conv_kernel_shape_disagrees": (lambda t: write(t, conv_model(attrs={"kernel_shape": [5, 5]})),
                                    ["node 'conv' (Conv)", "kernel_shape (5, 5) disagrees"]),
    "conv_stride_zero": (lambda t: write(t, conv_model(attrs={"strides": [0, 1]})),
                         ["node 'conv' (Conv)", "strides [0, 1]"]),
    "conv_pads_wrong_length": (lambda t: write(t, conv_model(attrs={"pads": [1, 1, 1, 1, 1, 1]})),
                               ["node 'conv' (Conv)", "pads [1, 1, 1, 1, 1, 1]"]),
    "conv_bad_auto_pad": (lambda t: write(t, conv_model(attrs={"auto_pad": "SIDEWAYS"})),
                          ["node 'conv' (Conv)", "auto_pad 'SIDEWAYS'"]),
    "conv_bias_shape": (lambda t: write(t, model([node("Conv", ["input", "w", "b"], "y", name="conv")],
                                                 [arr("w", np.zeros((4, 3, 3, 3), np.float32)),
                                                  arr("b", np.zeros(5, np.float32))])),
                        ["node 'conv' (Conv)", "bias 'b' of shape (5,) for 4 outputs"]),
    "conv_missing_weight": (lambda t: write(t, model([node("Conv", ["input"], "y", name="conv")])),
                            ["node 'conv' (Conv)", "malformed node"]),
    "gemm_mismatch": (lambda t: write(t, model([node("Flatten", ["input"], "f", name="flat"),
                                                node("Gemm", ["f", "w"], "y", name="fc", transB=1)],
                                               [arr("w", np.zeros((10, 100), np.float32))])),
                      ["node 'fc' (Gemm)", "needs 100 input features, the input has 192"]),
    "gemm_4d_input": (lambda t: write(t, model([node("Gemm", ["input", "w"], "y", name="fc")],
                                               [arr("w", np.zeros((8, 10), np.float32))])),
                      ["node 'fc' (Gemm)", "2-D input"]),
    # Two activations whose shapes do not broadcast (numpy's rule on equal ranks): one line naming
    # the node and both shapes, never a guessed broadcast.
    "add_no_broadcast": (lambda t: write(t, model([node("Conv", ["input", "w"], "c", name="conv"),
                                                   node("Add", ["input", "c"], "y", name="bad_add")],
                                                  [arr("w", np.zeros((4, 3, 3, 3), np.float32))])),
                         ["Add (bad_add", "broadcasting 1x3x8x8 with 1x4x6x6"]),
    "sub_ranks_differ": (lambda t: write(t, model([node("Flatten", ["input"], "f", name="flat"),
                                                   node("Sub", ["input", "f"], "y", name="bad_sub")])),
                         ["Sub (bad_sub", "broadcasting 1x3x8x8 with 1x192 (ranks differ)"]),
    "sum_three_broadcast": (lambda t: write(t, model([node("GlobalAveragePool", ["input"], "g", name="gap"),
                                                      node("Sum", ["input", "input", "g"], "y", name="bad_sum")])),
                            ["Sum (bad_sum", "broadcasting 1x3x8x8 with 1x3x8x8 with 1x3x1x1"]),
    "div_activation_by_zero": (lambda t: write(t, model([node("Div", ["input", "z"], "y", name="div0")],
                                                        [arr("z", 0.0, np.float32)])),
                               ["node 'div0' (Div)", "division by the constant 0"]),
    "mul_activation_by_inf": (lambda t: write(t, model([node("Mul", ["input", "k"], "y", name="times_inf")],
                                                       [arr("k", np.inf, np.float32)])),
                              ["node 'times_inf' (Mul)", "not a finite number"]),
    "empty_op_type": (lambda t: write(t, model([node("", ["input"], "y", name="blank")])),
                      ["'' (blank)", "no archcost equivalent"]),
    "unknown_op": (lambda t: write(t, model([node("FancyOp", ["input"], "y", name="fancy")])),
                   ["FancyOp (fancy)", "no archcost equivalent"]),
    "custom_domain": (lambda t: write(t, model([node("Relu", ["input"], "y", name="r", domain="com.evil")],
                                               extra_opsets=[("com.evil", 1)])),
                      ["Relu (r: domain com.evil)"]),
    "custom_domain_folding": (lambda t: write(t, shape_path([node("Add", ["a", "b"], "shape", name="evil_add",
                                                                  domain="com.evil")],
                                                            [arr("a", [1, 96], np.int64), arr("b", [0, 96], np.int64)]),
                                              ), ["evil_add: domain com.evil"]),
    "opset_from_the_future": (lambda t: write(t, model([node("Relu", ["input"], "y")], opset=999)),
                              ["opset_import", "version 999"]),
    "bad_attribute": (lambda t: write(t, _with_broken_attribute(model([node("LeakyRelu", ["input"], "y",
                                                                            name="lrelu")]))),
                      ["node 'lrelu' (LeakyRelu)", "malformed attribute"]),
    # --- names from the file that would break a one-line message
    "newline_node_name": (lambda t: write(t, model([node("FancyOp", ["input"], "y", name=NL_NAME)])),
                          ["FancyOp ('evil\\nname\\r\\nhere')"]),
    "megabyte_node_name": (lambda t: write(t, model([node("FancyOp", ["input"], "y", name=MB_NAME)])),
                           ["FancyOp ('nnnn", "1,000,000 characters"]),
    "megabyte_op_type": (lambda t: write(t, model([node(MB_NAME, ["input"], "y", name="odd")])),
                         ["(odd)", "1,000,000 characters"]),
    "megabyte_initializer_name": (lambda t: write(t, model([node("Conv", ["input", MB_NAME], "y", name="conv")],
                                                           [raw_tensor(MB_NAME, (4, 3, 3, 3), raw=b"")],
                                                           )), ["initializer 'nnnn", "1,000,000 characters"]),
    "newline_input_name": (lambda t: write(t, model([node("Relu", [NL_NAME], "y", name="r")],
                                                    inputs=[vinfo(NL_NAME, [1, "C", 8, 8])])),
                           ["input 'evil\\nname", "--input"]),
    "megabyte_tensor_reference": (lambda t: write(t, model([node("Relu", [MB_NAME], "y", name="r")])),
                                  ["node 'r' (Relu)", "1,000,000 characters"]),
    "megabyte_layer_name_in_shape_error": (lambda t: write(t, model([node("Softmax", ["input"], "y", name=MB_NAME,
                                                                          axis=9)])), ["axis 9"]),
    "many_unknown_ops": (lambda t: write(t, many_unknown(2000)), ["2,000 ONNX nodes", "Mystery (m0", "more"]),
    # --- constant folding
    "fold_int_div_by_zero": (lambda t: write(t, dims_chain(node("Div", ["c", "zero"], "q", name="div0"),
                                                           node("Concat", ["one", "q"], "target", name="cat", axis=0),
                                                           inits=[arr("zero", 0, np.int64),
                                                                  arr("one", [1], np.int64)])),
                             ["node 'div0' (Div)", "division by zero"]),
    "fold_float_div_by_zero": (lambda t: write(t, shape_path([node("Div", ["a", "z"], "q", name="fdiv"),
                                                              node("Cast", ["q"], "shape", name="cast", to=7)],
                                                             [arr("a", [1.0, 192.0], np.float32),
                                                              arr("z", [0.0], np.float32)])),
                               ["node 'fdiv' (Div)", "divide by zero"]),
    "fold_int_overflow_mul": (lambda t: write(t, dims_chain(node("Mul", ["c", "big"], "p", name="mul_big"),
                                                            inits=[arr("big", 2**62, np.int64)])),
                              ["node 'mul_big' (Mul)", "integer overflow"]),
    "fold_int_overflow_add": (lambda t: write(t, shape_path([node("Add", ["a", "b"], "shape", name="add_big")],
                                                            [arr("a", [1, 2**63 - 1], np.int64),
                                                             arr("b", [0, 1], np.int64)])),
                              ["node 'add_big' (Add)", "integer overflow"]),
    "fold_int_min_div_minus_one": (lambda t: write(t, shape_path([node("Div", ["a", "b"], "shape", name="div_min")],
                                                                 [arr("a", [1, -2**63], np.int64),
                                                                  arr("b", [1, -1], np.int64)])),
                                   ["node 'div_min' (Div)", "integer overflow"]),
    "fold_sqrt_negative": (lambda t: write(t, shape_path([node("Sqrt", ["a"], "r", name="root"),
                                                          node("Cast", ["r"], "shape", name="cast", to=7)],
                                                         [arr("a", [1.0, -4.0], np.float32)])),
                           ["node 'root' (Sqrt)", "invalid value"]),
    "fold_cast_nan": (lambda t: write(t, shape_path([node("Cast", ["a"], "shape", name="cast_nan", to=7)],
                                                    [arr("a", [1.0, np.nan], np.float32)])),
                      ["node 'cast_nan' (Cast)", "non-finite"]),
    "fold_cast_out_of_range": (lambda t: write(t, shape_path([node("Cast", ["a"], "shape", name="cast_big", to=7)],
                                                             [arr("a", [1.0, 1e30], np.float32)])),
                               ["node 'cast_big' (Cast)", "does not fit int64"]),
    "fold_float_overflow": (lambda t: write(t, shape_path([node("Mul", ["a", "a"], "p", name="fmul"),
                                                           node("Cast", ["p"], "shape", name="cast", to=7)],
                                                          [arr("a", [1.0, 3e38], np.float32)])),
                            ["node 'fmul' (Mul)", "overflow"]),
    "fold_range_delta_zero": (lambda t: write(t, shape_path([node("Range", ["s", "l", "d"], "shape", name="rng")],
                                                            [arr("s", 0, np.int64), arr("l", 4, np.int64),
                                                             arr("d", 0, np.int64)])),
                              ["node 'rng' (Range)", "delta is 0"]),
    "fold_range_huge": (lambda t: write(t, shape_path([node("Range", ["s", "l", "d"], "shape", name="rng")],
                                                      [arr("s", 0, np.int64), arr("l", 10**12, np.int64),
                                                       arr("d", 1, np.int64)])),
                        ["node 'rng' (Range)", "1,000,000,000,000 values"]),
    "fold_constant_of_shape_huge": (lambda t: write(t, shape_path([node("ConstantOfShape", ["dims"], "big",
                                                                        name="fill"),
                                                                   node("Shape", ["big"], "shape", name="sh")],
                                                                  [arr("dims", [10**6, 10**6], np.int64)])),
                                    ["node 'fill' (ConstantOfShape)", "1,000,000,000,000 values"]),
    "fold_constant_of_shape_negative": (lambda t: write(t, shape_path([node("ConstantOfShape", ["dims"], "big",
                                                                            name="fill"),
                                                                       node("Shape", ["big"], "shape", name="sh")],
                                                                      [arr("dims", [3, -2], np.int64)])),
                                        ["node 'fill' (ConstantOfShape)", "negative"]),
    "fold_broadcast_huge": (lambda t: write(t, shape_path([node("Mul", ["col", "row"], "big", name="outer"),
                                                           node("Shape", ["big"], "shape", name="sh")],
                                                          [arr("col", np.ones((5000, 1), np.int64)),
                                                           arr("row", np.ones((1, 5000), np.int64))])),
                            ["node 'outer' (Mul)", "25,000,000 values"]),
    "fold_gather_out_of_range": (lambda t: write(t, dims_chain(node("Gather", ["s", "i9"], "g", name="gather9"),
                                                               inits=[arr("i9", 9, np.int64)])),
                                 ["node 'gather9' (Gather)", "index 9 is out of range"]),
    "fold_slice_step_zero": (lambda t: write(t, shape_path([node("Slice", ["a", "st", "en", "ax", "step"], "shape",
                                                                 name="slice0")],
                                                           [arr("a", [1, 192], np.int64), arr("st", [0], np.int64),
                                                            arr("en", [2], np.int64), arr("ax", [0], np.int64),
                                                            arr("step", [0], np.int64)])),
                             ["node 'slice0' (Slice)", "cannot evaluate"]),
    "fold_unsqueeze_axis_out_of_range": (lambda t: write(t, dims_chain(node("Unsqueeze", ["c", "ax"], "u",
                                                                            name="unsq"),
                                                                       inits=[arr("ax", [5], np.int64)])),
                                         ["node 'unsq' (Unsqueeze)", "axes [5]: 5 is out of range"]),
    # --- Pad (issue 13): every bad amount, value, axis or mode is one line naming the node
    "pad_wrong_length": (lambda t: write(t, pad_model([0, 0, 1, 1, 0, 0, 1])),
                         ["node 'pad0' (Pad)", "7 pads for a 4-d input (expected 8)"]),
    "pad_float_pads": (lambda t: write(t, pad_model(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.float32))),
                       ["node 'pad0' (Pad)", "holds float32 values where integers are needed"]),
    "pad_crop_past_the_size": (lambda t: write(t, pad_model([0, 0, -5, 0, 0, 0, -4, 0])),
                               ["node 'pad0' (Pad)", "pads (-5, -4) crop axis 2 of the 1x3x8x8 input to -1"]),
    "pad_channels": (lambda t: write(t, pad_model([0, 1, 0, 0, 0, 0, 0, 0])),
                     ["pad0: pads of the C (1, 0) axis (archcost pads the spatial axes only)"]),
    "pad_two_values": (lambda t: write(t, pad_model([0, 0, 1, 1, 0, 0, 1, 1], value=[1.0, 2.0])),
                       ["node 'pad0' (Pad)", "constant_value 'v' must be one number, got 2 float32 values"]),
    "pad_string_value": (lambda t: write(t, pad_model([0, 0, 1, 1, 0, 0, 1, 1], value=np.array(["x"]))),
                         ["initializer 'v'", "'STRING' is not supported"]),
    "pad_axes_out_of_range": (lambda t: write(t, pad_model([1, 1], axes=[4], opset=18)),
                              ["node 'pad0' (Pad)", "axes [4]: 4 is out of range for a 4-d tensor"]),
    "pad_axes_repeat": (lambda t: write(t, pad_model([1, 1, 1, 1], axes=[2, -2], opset=18)),
                        ["node 'pad0' (Pad)", "repeat an axis"]),
    "pad_axes_before_opset_18": (lambda t: write(t, pad_model([1, 1], axes=[3], opset=17)),
                                 ["node 'pad0' (Pad)", "an axes input is Pad's from opset 18 on"]),
    "pad_wrap_before_opset_19": (lambda t: write(t, pad_model([0, 0, 1, 1, 0, 0, 1, 1], mode="wrap", opset=18)),
                                 ["node 'pad0' (Pad)", "mode 'wrap' is Pad's from opset 19 on"]),
    "pad_no_pads": (lambda t: write(t, model([node("Pad", ["input"], "y", name="pad0")])),
                    ["node 'pad0' (Pad)", "no pads input"]),
    "pad_opset_2_float_pads": (lambda t: write(t, model([node("Pad", ["input"], "y", name="pad0",
                                                              pads=[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0])],
                                                        opset=2)),
                               ["node 'pad0' (Pad)", "malformed attribute 'pads'"]),
    "pad_mode_not_a_string": (lambda t: write(t, pad_model([0, 0, 1, 1, 0, 0, 1, 1], mode=3)),
                              ["node 'pad0' (Pad)", "malformed attribute 'mode'"]),
    "fold_missing_input": (lambda t: write(t, shape_path([node("Div", ["a", ""], "shape", name="half_div")],
                                                         [arr("a", [1, 192], np.int64)])),
                           ["node 'half_div' (Div)", "expected 2 inputs"]),
}


def _with_sparse(m):
    values = arr("sp", np.ones(2, np.float32))
    indices = arr("sp_idx", np.array([0, 1], np.int64))
    m.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
    return m


def _with_broken_attribute(m):
    # An attribute whose type field says nothing: onnx.helper cannot read it.
    attr = m.graph.node[0].attribute.add()
    attr.name = "alpha"
    return m


def _as_an_ordinary_user(case, monkeypatch):
    # Root reads a file whatever its mode (CI may run as root): there, the read of a mode-000
    # file is made to fail as it does for any other user, so the error path is still tested.
    if case == "unreadable" and (not hasattr(os, "geteuid") or os.geteuid() == 0):
        from archcost.formats import onnx_import

        def open_as_user(file, *args, **kwargs):
            if not os.stat(file).st_mode & 0o444:
                raise PermissionError(13, "Permission denied", str(file))
            return open(file, *args, **kwargs)

        # The importer's own `open` (a module global shadows the builtin for its code alone).
        monkeypatch.setattr(onnx_import, "open", open_as_user, raising=False)


def _assert_one_short_line(message):
    assert len(message.splitlines()) == 1 and "\r" not in message, message[:1000]
    assert len(message) <= 500, message[:1000]


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_onnx_raises_one_line_naming_the_culprit(case, tmp_path, monkeypatch):
    _as_an_ordinary_user(case, monkeypatch)
    build, expected = CASES[case]
    path = build(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            formats.load(path)
        except ArchcostError as exc:
            message = str(exc)
        except Exception as exc:  # noqa: BLE001 - any other class is the bug under test
            pytest.fail(f"{case}: raised {type(exc).__name__}, not ArchcostError: {str(exc)[:300]}")
        else:
            pytest.fail(f"{case}: loaded without an error")
    assert not [w for w in caught if not issubclass(w.category, DeprecationWarning)], \
        [str(w.message) for w in caught]
    _assert_one_short_line(message)
    for part in expected:
        assert part in message, message


# Every case through the CLI too: exit 2 and one stderr line, never a traceback or exit 3.
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_onnx_through_the_cli_is_one_error_line(case, tmp_path, capsys, monkeypatch):
    _as_an_ordinary_user(case, monkeypatch)
    path = CASES[case][0](tmp_path)
    rc = cli.main(["table", str(path)])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert rc == 2, captured.err[:1000]
    assert len(lines) == 1 and lines[0].startswith("archcost: error:"), captured.err[:1000]
    assert "Traceback" not in captured.err
    assert len(lines[0]) <= 600
    assert captured.out == ""


def test_a_file_past_the_protobuf_limit_is_refused_before_reading(tmp_path, monkeypatch):
    from archcost.formats import onnx_import

    monkeypatch.setattr(onnx_import, "MAX_PROTOBUF_BYTES", 100)
    path = write(tmp_path, bytes(200))
    with pytest.raises(ArchcostError, match="200 bytes, more than an ONNX protobuf can hold"):
        formats.load(path)


def test_external_data_inside_the_model_directory_is_read(tmp_path, capsys):
    path = external_ok(tmp_path)
    graph = formats.load(path)
    assert [graph.shape(n) for n in graph.topological_order()][-1] == (1, 4, 6, 6)
    # ...and external data feeding folded shape arithmetic is read by archcost, not by onnx.
    (tmp_path / "shape.bin").write_bytes(b"\0" * 8 + np.array([1, 192], np.int64).tobytes())
    t = TensorProto(name="shape", data_type=TensorProto.INT64, dims=[2], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "shape.bin"), ("offset", "8"), ("length", "16")):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    graph = formats.load(write(tmp_path, shape_path([], [t]), name="r.onnx"))
    assert graph.shape(graph.topological_order()[-1]) == (1, 192)


def test_sound_models_still_load_after_the_checks(tmp_path):
    # shape arithmetic the folding must still evaluate: int64 Shape -> Gather -> Mul -> Concat
    m = dims_chain(node("Mul", ["c", "k"], "p", name="times"),
                   node("Div", ["p", "k"], "q", name="back"),
                   node("Mul", ["q", "hw"], "chw", name="chw_mul"),
                   node("Concat", ["one", "chw"], "target", name="cat", axis=0),
                   inits=[arr("k", 4, np.int64), arr("hw", [64], np.int64), arr("one", [1], np.int64)])
    graph = formats.load(write(tmp_path, m))
    assert graph.shape(graph.topological_order()[-1]) == (1, 192)
    # a negative integer quotient truncates toward zero, as ONNX runtimes do
    from archcost.formats.onnx_import import _Importer

    assert _Importer._int_binary("Div", np.array([-7, 7]), np.array([2, -2]), "x").tolist() == [-3, -3]
    # a Conv weight may be dims alone (cost models strip the values)
    graph = formats.load(write(tmp_path, conv_model(w=raw_tensor("w", (4, 3, 3, 3))), name="c.onnx"))
    assert graph.shape(graph.topological_order()[-1]) == (1, 4, 6, 6)


def test_the_fold_limit_is_configurable(tmp_path, monkeypatch):
    path = write(tmp_path, shape_path([node("Range", ["s", "l", "d"], "r", name="rng"),
                                       node("Shape", ["r"], "n", name="count"),
                                       node("Concat", ["one", "n"], "shape", name="cat", axis=0)],
                                      [arr("s", 0, np.int64), arr("l", 192, np.int64), arr("d", 1, np.int64),
                                       arr("one", [1], np.int64)]))
    assert formats.load(path).shape("reshape") == (1, 192)
    monkeypatch.setenv("ARCHCOST_MAX_FOLD_VALUES", "100")
    with pytest.raises(ArchcostError, match="node 'rng' \\(Range\\): the result would hold 192 values"):
        formats.load(path)
