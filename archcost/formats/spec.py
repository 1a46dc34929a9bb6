"""Architecture spec files (YAML, TOML or JSON; one schema): read them into a Graph.

The schema is documented, with examples, in docs/spec.md. In short::

    name: tiny_resnet
    input: [3, 32, 32]
    params: {width: 16}                 # overridable with -o width=32
    blocks:
      basic:                            # a named, reusable sub-graph with parameters
        params: {out: null, stride: 1}  # null: the caller must give it
        layers:
          - residual:
              body:
                - conv: {out_channels: $out, kernel: 3, stride: $stride, padding: 1, bias: false}
                - bn
                - relu
                - conv: {out_channels: $out, kernel: 3, padding: 1, bias: false}
                - bn
              shortcut: ...
          - relu
    layers:
      - conv: {out_channels: $width, kernel: 3, padding: 1}
        name: stem
      - repeat: 3
        name: stage1
        block: {basic: {out: $width}}
      - branch: {left: [conv: 8], right: [maxpool: {kernel: 3, stride: 1, padding: 1}]}
        merge: concat
      - gap
      - flatten
      - fc: 10

Each entry of a layer list feeds on the entry before it unless it names its ``inputs``. A name is
looked up in the entry's own scope first, then in the scopes around it; inside a block, branch
path, residual or repeat, ``input`` is that construct's input.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import operator
import pathlib

from archcost.errors import ArchcostError, limit_from_env, quote
from archcost.formats.opcodec import make_op, op_names
from archcost.graph import Graph
from archcost.ops import Add, Concat, Input, Linear, Mean, Mul, Sub

TOP_KEYS = ("name", "description", "input", "params", "blocks", "layers")
BLOCK_KEYS = ("params", "layers", "description")
CONSTRUCTS = {"repeat": ("layers", "block"), "branch": ("merge",), "residual": ()}
COMMON_KEYS = ("name", "inputs", "when", "torch")
MERGES = {"concat": Concat, "add": Add, "mean": Mean, "mul": Mul, "sub": Sub}
MAX_REPEAT = 100_000
# A parsed document may hold at most this many values (mappings, lists and scalars, counting a
# YAML alias once per place it is used), nested at most MAX_SPEC_DEPTH deep: a "billion laughs"
# alias bomb is a few hundred bytes of YAML that expands to 10^9 values. ARCHCOST_MAX_SPEC_VALUES
# overrides the first.
DEFAULT_MAX_SPEC_VALUES = 1_000_000
MAX_SPEC_DEPTH = 200
# Expressions may build strings and lists (`$('a' * 3)`), and ints, but not giant ones.
MAX_EXPR_ITEMS = 10_000
MAX_EXPR_INT_BITS = 1024


# --- reading the file ----------------------------------------------------------------------------
def read_document(path: pathlib.Path):
    """Parse the file into plain Python values; syntax errors become one line with the position."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchcostError(f"{path}: cannot read: {exc}") from None
    if suffix in (".yaml", ".yml"):
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            return yaml.load(text, Loader=loader)
        except RecursionError:
            raise ArchcostError(f"{path}: malformed YAML: nested too deeply") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ArchcostError(f"{path}{where}: malformed YAML: {' '.join(str(problem).split())}") from None
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise ArchcostError(f"{path}: reading TOML needs Python 3.11 or later (tomllib)") from None
        try:
            return tomllib.loads(text)
        except RecursionError:
            raise ArchcostError(f"{path}: malformed TOML: nested too deeply") from None
        except tomllib.TOMLDecodeError as exc:
            raise ArchcostError(f"{path}: malformed TOML: {' '.join(str(exc).split())}") from None
    if suffix == ".json":
        import json

        try:
            return json.loads(text)
        except RecursionError:
            raise ArchcostError(f"{path}: malformed JSON: nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise ArchcostError(f"{path}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
    raise ArchcostError(f"{path}: not a spec file (expected .yaml, .yml, .toml or .json)")


def check_document_size(doc, source: str) -> None:
    """Refuse a document that expands past the value limit or nests past MAX_SPEC_DEPTH,
    counting shared (aliased) parts once per use without walking them again: the size of a
    container is computed once and memoised by identity."""
    limit = limit_from_env("ARCHCOST_MAX_SPEC_VALUES", DEFAULT_MAX_SPEC_VALUES)
    sizes: dict[int, int] = {}
    # An explicit stack (no recursion): (value, depth, children done?)
    stack = [(doc, 1, False)]
    while stack:
        value, depth, done = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        key = id(value)
        children = list(value.values()) if isinstance(value, dict) else value
        if done:
            total = 1 + sum(sizes.get(id(c), 1) for c in children)
            if total > limit:
                raise ArchcostError(
                    f"{source}: the document expands to more than {limit:,} values (a YAML alias bomb?); "
                    "set ARCHCOST_MAX_SPEC_VALUES to raise the limit"
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if depth > MAX_SPEC_DEPTH:
            raise ArchcostError(f"{source}: the document nests more than {MAX_SPEC_DEPTH} levels deep")
        stack.append((value, depth, True))
        stack.extend((c, depth + 1, False) for c in children if isinstance(c, (dict, list)) and id(c) not in sizes)


def load_spec(path, input_shape=None, options: dict | None = None) -> Graph:
    """The Graph described by a spec file (or a networkx node-link JSON file)."""
    path = pathlib.Path(path)
    doc = read_document(path)
    check_document_size(doc, str(path))
    if isinstance(doc, dict) and "nodes" in doc and ("links" in doc or "edges" in doc):
        from archcost.formats.nodelink import graph_from_node_link

        if options:
            raise ArchcostError(f"{path}: a node-link graph takes no -o options")
        return graph_from_node_link(doc, str(path), input_shape)
    return build_spec(doc, str(path), input_shape=input_shape, options=options or {})


def build_spec(doc, source: str = "<spec>", input_shape=None, options: dict | None = None) -> Graph:
    """The Graph described by a parsed spec document; errors are prefixed with ``source``."""
    try:
        return _Builder(doc, source, input_shape, options or {}).build()
    except ArchcostError as exc:
        message = str(exc)
        raise ArchcostError(message if message.startswith(source) else f"{source}: {message}") from None
    except RecursionError:
        raise ArchcostError(f"{source}: blocks nest too deeply") from None


# --- parameter expressions: `$width`, `$(width * 4)`, `$(2 if i == 0 else 1)` ------------------
_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_CALLS = {"min": min, "max": max, "int": int, "round": round}


def evaluate(text: str, env: dict, where: str):
    """Evaluate a parameter expression (arithmetic, comparisons, ``a if c else b``, min/max/int/
    round over the names in ``env``). Nothing else is allowed: no attributes, no other calls."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ArchcostError(f"{where}: bad expression {quote('$' + text)}") from None

    def ev(node):
        return _checked(_ev(node))

    def _checked(value):
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_EXPR_INT_BITS:
            raise ArchcostError(f"{where}: {quote('$' + text)} gives an integer of more than {MAX_EXPR_INT_BITS} bits")
        if isinstance(value, (str, list)) and len(value) > MAX_EXPR_ITEMS:
            raise ArchcostError(f"{where}: {quote('$' + text)} gives a {type(value).__name__} of {len(value):,} "
                                f"items (at most {MAX_EXPR_ITEMS:,})")
        return value

    def _ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in env:
                known = ", ".join(sorted(env)) or "none"
                raise ArchcostError(f"{where}: unknown parameter {quote(node.id)} in {quote('$' + text)}; known: {known}")
            return env[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 64:
                raise ArchcostError(f"{where}: exponent {right} in {quote('$' + text)} is too large")
            if isinstance(node.op, ast.Mult):
                # Check a repetition's size before building it: 'a' * 10**9 is a gigabyte.
                for seq, times in ((left, right), (right, left)):
                    if (isinstance(seq, (str, list)) and isinstance(times, int)
                            and len(seq) * max(times, 0) > MAX_EXPR_ITEMS):
                        raise ArchcostError(f"{where}: {quote('$' + text)} would build a {type(seq).__name__} "
                                            f"of {len(seq) * times:,} items (at most {MAX_EXPR_ITEMS:,})")
            if isinstance(node.op, (ast.Mult, ast.Pow)) and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in (left, right)):
                # Bound the result's size before computing it (an exponent <= 64 of a huge base).
                bits = (left.bit_length() + right.bit_length() if isinstance(node.op, ast.Mult)
                        else left.bit_length() * abs(right))
                if bits > MAX_EXPR_INT_BITS + 64:
                    raise ArchcostError(f"{where}: {quote('$' + text)} gives an integer of more than "
                                        f"{MAX_EXPR_INT_BITS} bits")
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else +value if isinstance(node.op, ast.UAdd) else not value
        if isinstance(node, ast.Compare) and all(type(o) in _COMPARE for o in node.ops):
            left = ev(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = ev(right_node)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            values = [ev(v) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.IfExp):
            return ev(node.body) if ev(node.test) else ev(node.orelse)
        if isinstance(node, (ast.Tuple, ast.List)):
            return [ev(v) for v in node.elts]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS
                and not node.keywords):
            return _CALLS[node.func.id](*(ev(a) for a in node.args))
        raise ArchcostError(f"{where}: {quote('$' + text)} uses something other than arithmetic on parameters")

    try:
        return ev(tree)
    except ArchcostError:
        raise
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ArchcostError(f"{where}: cannot evaluate {quote('$' + text)}: {exc}") from None
    except RecursionError:
        raise ArchcostError(f"{where}: {quote('$' + text)} nests too deeply") from None


def substitute(value, env: dict, where: str):
    """Replace every ``$expression`` string inside ``value`` by its value."""
    if isinstance(value, str) and value.startswith("$"):
        result = evaluate(value[1:], env, where)
        return int(result) if isinstance(result, float) and result.is_integer() and "/" not in value else result
    if isinstance(value, list):
        return [substitute(v, env, where) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, env, where) for k, v in value.items()}
    return value


# --- building -----------------------------------------------------------------------------------
def _parse_params(spec, where: str) -> dict:
    """``{name: default}`` (None: required) from a mapping, or a list of required names."""
    if spec is None:
        return {}
    if isinstance(spec, list) and all(isinstance(p, str) for p in spec):
        return {p: None for p in spec}
    if isinstance(spec, dict) and all(isinstance(p, str) for p in spec):
        return dict(spec)
    raise ArchcostError(f"{where}: params must be a mapping of name: default, or a list of names")


class _Builder:
    def __init__(self, doc, source: str, input_shape, options: dict):
        self.source = source
        self.input_shape = input_shape
        self.options = options
        if not isinstance(doc, dict):
            raise ArchcostError(f"the top level must be a mapping with 'layers', got {type(doc).__name__}")
        self.doc = doc
        self.ops = op_names()
        self.counters: dict[tuple, int] = {}
        self.scope: list[str] = []
        self.call_stack: list[str] = []
        self.layouts: dict[str, str] = {}

    # ---- top level
    def build(self) -> Graph:
        doc = self.doc
        for key in doc:
            if key not in TOP_KEYS:
                raise ArchcostError(f"unknown top-level key {quote(key)}; keys: {', '.join(TOP_KEYS)}")
        name = doc.get("name", pathlib.Path(self.source).stem)
        self.g = Graph(str(name), str(doc.get("description") or ""))
        self.params = _parse_params(doc.get("params"), "params")
        for key in self.options:
            if key not in self.params:
                known = ", ".join(self.params) or "none"
                raise ArchcostError(f"-o {key}: not a parameter of this spec; params: {known}")
        env = {**self.params, **self.options}
        for key, value in env.items():
            if value is None:
                raise ArchcostError(f"params: {quote(key)} has no value; give it with -o {key}=VALUE")
        self.global_env = env
        self.blocks = self._read_blocks(doc.get("blocks"))
        layers = doc.get("layers")
        if not isinstance(layers, list) or not layers:
            raise ArchcostError("'layers' must be a non-empty list")
        self.names_in_doc = set(_all_names(layers)) | set(_all_names(self.blocks))
        x = None
        if "input" in doc:
            shape = self.input_shape or substitute(doc["input"], env, "input")
            if not isinstance(shape, (list, tuple)):
                raise ArchcostError(f"input: expected a shape like [3, 224, 224], got {quote(shape)}")
            x = self.g.input(shape)
        self.seq(layers, x, env, None, "layers")
        if not self.g.input_nodes():
            raise ArchcostError("no input: give 'input: [C, H, W]' or an input layer")
        if self.input_shape is not None and len(self.g.input_nodes()) != 1:
            raise ArchcostError("--input is ambiguous: the spec has several inputs")
        return self.g

    def _read_blocks(self, blocks) -> dict:
        if blocks is None:
            return {}
        if not isinstance(blocks, dict):
            raise ArchcostError("'blocks' must be a mapping of block name -> {params, layers}")
        for name, body in blocks.items():
            where = f"blocks.{name}"
            if name in self.ops or name in CONSTRUCTS or name in COMMON_KEYS:
                raise ArchcostError(f"{where}: the name {quote(name)} is taken by an op or a keyword")
            if not isinstance(body, dict) or not isinstance(body.get("layers"), list) or not body["layers"]:
                raise ArchcostError(f"{where}: a block is a mapping with a non-empty 'layers' list")
            for key in body:
                if key not in BLOCK_KEYS:
                    raise ArchcostError(f"{where}: unknown key {quote(key)}; keys: {', '.join(BLOCK_KEYS)}")
            _parse_params(body.get("params"), f"{where}.params")
        return blocks

    # ---- names
    @contextlib.contextmanager
    def scoped(self, name: str):
        self.scope.append(name)
        with self.g.scope(name):
            try:
                yield
            finally:
                self.scope.pop()

    def auto_name(self, base: str) -> str:
        key = (tuple(self.scope), base)
        self.counters[key] = self.counters.get(key, 0) + 1
        return f"{base}{self.counters[key]}"

    def full(self, local: str) -> str:
        return ".".join([*self.scope, local])

    def resolve(self, ref, frame_input, where: str) -> str:
        if not isinstance(ref, str):
            raise ArchcostError(f"{where}: inputs must be layer names, got {quote(ref)}")
        if ref == "input" and frame_input is not None:
            return frame_input
        for k in range(len(self.scope), -1, -1):
            candidate = ".".join([*self.scope[:k], ref])
            if candidate in self.g:
                return candidate
        if ref in self.names_in_doc or ref.rsplit(".", 1)[-1] in self.names_in_doc:
            cycle = _find_cycle(self.doc.get("layers", []))
            if cycle:
                raise ArchcostError(f"{where}: the layers form a cycle: {' -> '.join(cycle)}")
            raise ArchcostError(
                f"{where}: input {quote(ref)} is used before it is defined; list layers after their inputs"
            )
        close = difflib.get_close_matches(ref, list(self.g.nx), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ArchcostError(f"{where}: unknown input {quote(ref)}{hint}")

    # ---- layer lists
    def seq(self, items, x, env, frame_input, where: str):
        if not isinstance(items, list):
            raise ArchcostError(f"{where}: expected a list of layers, got {quote(items)}")
        for i, item in enumerate(items):
            x = self.entry(item, x, env, frame_input, f"{where}[{i}]")
        return x

    def entry(self, item, x, env, frame_input, where: str):
        if isinstance(item, str):
            item = {item: None}
        if not isinstance(item, dict) or not item:
            raise ArchcostError(f"{where}: a layer is an op name or a mapping, got {quote(item)}")
        heads = [k for k in item if k in CONSTRUCTS or k in self.ops or k in self.blocks]
        if len(heads) != 1:
            if heads:
                raise ArchcostError(f"{where}: one entry holds several layers: {', '.join(heads)}")
            unknown = next((k for k in item if k not in COMMON_KEYS), None)
            if unknown is None:
                raise ArchcostError(f"{where}: the entry names no op, block or construct")
            close = difflib.get_close_matches(str(unknown), [*self.ops, *self.blocks, *CONSTRUCTS], n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ArchcostError(f"{where}: unknown op or block {quote(unknown)}{hint}")
        head = heads[0]
        allowed = {head, *COMMON_KEYS, *CONSTRUCTS.get(head, ())}
        for key in item:
            if key not in allowed:
                raise ArchcostError(f"{where} ({head}): unknown key {quote(key)}; keys here: {', '.join(sorted(allowed))}")
        if "when" in item:  # an optional layer: left out when the condition is false
            when = substitute(item["when"], env, where)
            if not isinstance(when, bool):
                raise ArchcostError(f"{where}: 'when' must be true or false, got {quote(when)}")
            if not when:
                return x
        name = item.get("name")
        if isinstance(name, bool) or not isinstance(name, (str, int, type(None))):
            raise ArchcostError(f"{where}: name must be a string, got {quote(name)}")
        if name is not None:
            name = str(name)
        if name is not None:
            where = f"layer {quote(self.full(name))}"
        refs = item.get("inputs")
        if refs is not None:
            if isinstance(refs, str):
                refs = [refs]
            if not isinstance(refs, list):
                raise ArchcostError(f"{where}: inputs must be a list of layer names")
            sources = [self.resolve(r, frame_input, where) for r in refs]
        elif x is None and head != "input" and self.ops.get(head, (None,))[0] is not Input:
            raise ArchcostError(f"{where}: no layer before it to feed on; give its inputs")
        else:
            sources = None if x is None else [x]
        if "torch" in item and (head in CONSTRUCTS or head in self.blocks):
            raise ArchcostError(f"{where} ({head}): 'torch' describes one layer, not a {head}")
        if head in CONSTRUCTS or head in self.blocks:
            if sources is None or len(sources) != 1:
                raise ArchcostError(f"{where}: a {head} takes exactly one input")
            return getattr(self, f"do_{head}", self.do_block)(head, item, sources[0], env, where)
        return self.do_op(head, item.get(head), name, sources or [], env, where, explicit=refs is not None,
                          torch=item.get("torch", "default"))

    def do_op(self, head, fields, name, sources, env, where, explicit=False, torch="default"):
        op = make_op(head, substitute(fields, env, where), where if name else f"{where} ({head})")
        if isinstance(op, Input):
            if torch != "default":
                raise ArchcostError(f"{where}: 'torch' describes a layer, not the input")
            if explicit:
                raise ArchcostError(f"{where}: an input layer takes no inputs")
            if self.input_shape is not None and self.g.input_nodes():
                raise ArchcostError("--input is ambiguous: the spec has several inputs")
            local = name or ("input" if self.full("input") not in self.g else self.auto_name("input"))
            shape = op.shape if self.input_shape is None else self.input_shape
            return self.g.input(shape, name=self.full(local))
        local = name or self.auto_name(head)
        if isinstance(op, Linear) and sources and len(self.g.shape(sources[0])) > 2:
            # fc acts on the last axis. On a channels-last map (after a permute) that is the
            # features, per position (ConvNeXt's MLP); on an NCHW map it is W, which is never
            # what `gap` then `fc: 10` means, and would give 1x10x16 without a word.
            layout = self.layout_of(sources[0])
            if layout[-1] != "C":
                shape = self.g.shape(sources[0])
                raise ArchcostError(
                    f"{where}: fc acts on the last axis, which is {layout[-1]} of this {layout} input "
                    f"{'x'.join(map(str, shape))}; put a flatten before it (or permute to channels-last)"
                )
        return self.g.add(op, *sources, name=local, torch=torch)

    def layout_of(self, node: str) -> str:
        """Axis letters of a node's output ("NCHW", "NHWC", "NC"), from the ops' layout rules,
        for every node so far in build (= topological) order, in one pass, without recursion."""
        if node not in self.layouts:
            for n in self.g.topological_order():
                if n not in self.layouts:
                    inputs = tuple(self.layouts[src] for src in self.g.inputs(n))
                    self.layouts[n] = self.g.op(n).layout(inputs, self.g.shape(n))
        return self.layouts[node]

    def do_block(self, head, item, x, env, where):
        args = item.get(head)
        return self.call_block(head, args, item.get("name"), x, env, where)

    def call_block(self, block, args, name, x, env, where, scope: str | None = None):
        body = self.blocks[block]
        if block in self.call_stack:
            chain = " -> ".join([*self.call_stack[self.call_stack.index(block):], block])
            raise ArchcostError(f"{where}: block {quote(block)} uses itself ({chain})")
        declared = _parse_params(body.get("params"), f"blocks.{block}.params")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            free = list(declared)
            if len(free) < 1:
                raise ArchcostError(f"{where}: block {quote(block)} takes no parameters, got {quote(args)}")
            args = {free[0]: args}
        args = substitute(args, env, where)
        for key in args:
            if key not in declared:
                raise ArchcostError(
                    f"{where}: block {quote(block)} has no parameter {quote(key)}; params: {', '.join(declared) or 'none'}"
                )
        values = {**declared, **args}
        missing = [k for k, v in values.items() if v is None]
        if missing:
            raise ArchcostError(f"{where}: block {quote(block)} needs parameter {quote(missing[0])}")
        inner_env = {**self.global_env, **values}
        local = scope or (str(name) if name is not None else self.auto_name(block))
        self.call_stack.append(block)
        try:
            with self.scoped(local):
                out = self.seq(body["layers"], x, inner_env, x, f"blocks.{block}.layers")
        finally:
            self.call_stack.pop()
        return out

    def do_repeat(self, head, item, x, env, where):
        count = substitute(item["repeat"], env, where)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_REPEAT:
            raise ArchcostError(f"{where}: repeat needs a count from 0 to {MAX_REPEAT}, got {quote(count)}")
        has_block, has_layers = "block" in item, "layers" in item
        if has_block == has_layers:
            raise ArchcostError(f"{where}: repeat needs either 'block' or 'layers' (not both)")
        local = str(item["name"]) if item.get("name") is not None else self.auto_name("repeat")
        with self.scoped(local):
            # Graph.loop refuses, after the first time round, a count past the layer limit.
            for i in self.g.loop(count, f"repeat at {where}"):
                inner = {**env, "i": i}
                if has_block:
                    call = item["block"]
                    block, args = (call, None) if isinstance(call, str) else _single(call, where)
                    if block not in self.blocks:
                        raise ArchcostError(f"{where}: repeat of unknown block {quote(block)}")
                    x = self.call_block(block, args, None, x, inner, where, scope=str(i))
                else:
                    with self.scoped(str(i)):
                        x = self.seq(item["layers"], x, inner, x, f"{where}.layers")
        return x

    def do_branch(self, head, item, x, env, where):
        paths = item["branch"]
        if isinstance(paths, list) and all(isinstance(p, list) for p in paths):
            paths = {self.auto_name("branch"): p for p in paths}
        if not isinstance(paths, dict) or not paths:
            raise ArchcostError(f"{where}: branch needs a mapping of path name -> layers (or a list of lists)")
        ends = []
        for path_name, layers in paths.items():
            layers = layers or []
            with self.scoped(str(path_name)):
                ends.append(self.seq(layers, x, env, x, f"{where}.{path_name}") if layers else x)
        merge = item.get("merge", "concat")
        if merge in (None, "none"):  # the last path feeds on; the others are reached by name
            return ends[-1]
        merge_name, fields = (merge, None) if isinstance(merge, str) else _single(merge, where)
        if merge_name not in MERGES:
            raise ArchcostError(f"{where}: merge must be one of {', '.join(MERGES)} or none, got {quote(merge_name)}")
        op = make_op(merge_name, substitute(fields, env, where), where)
        local = str(item["name"]) if item.get("name") is not None else self.auto_name(merge_name)
        return self.g.add(op, *ends, name=local)

    def do_residual(self, head, item, x, env, where):
        body = item["residual"]
        shortcut = None
        if isinstance(body, dict):
            for key in body:
                if key not in ("body", "shortcut"):
                    raise ArchcostError(f"{where}: residual takes 'body' and 'shortcut', not {quote(key)}")
            body, shortcut = body.get("body"), body.get("shortcut")
        if not isinstance(body, list) or not body:
            raise ArchcostError(f"{where}: residual needs a non-empty body (a list of layers)")
        main = self.seq(body, x, env, x, f"{where}.body")
        skip = x
        if shortcut:
            count = self.counters.get((tuple(self.scope), "shortcut"), 0)
            self.counters[(tuple(self.scope), "shortcut")] = count + 1
            with self.scoped("shortcut" if count == 0 else f"shortcut{count + 1}"):
                skip = self.seq(shortcut, x, env, x, f"{where}.shortcut")
        local = str(item["name"]) if item.get("name") is not None else self.auto_name("add")
        return self.g.add(Add(), main, skip, name=local)


def _single(mapping, where: str):
    if not isinstance(mapping, dict) or len(mapping) != 1:
        raise ArchcostError(f"{where}: expected a name or a one-key mapping name: arguments, got {quote(mapping)}")
    return next(iter(mapping.items()))


def _all_names(value):
    """Every ``name:`` written anywhere in a (part of a) document."""
    if isinstance(value, dict):
        if isinstance(value.get("name"), str):
            yield value["name"]
        for v in value.values():
            yield from _all_names(v)
    elif isinstance(value, list):
        for v in value:
            yield from _all_names(v)


def _find_cycle(layers) -> list[str] | None:
    """A cycle among the top-level entries' names and inputs, as a list of names, if any."""
    import networkx as nx

    deps = nx.DiGraph()
    prev = None
    for entry in layers if isinstance(layers, list) else []:
        if not isinstance(entry, dict):
            prev = None
            continue
        name = entry.get("name")
        refs = entry.get("inputs")
        refs = [refs] if isinstance(refs, str) else refs if isinstance(refs, list) else [prev]
        if isinstance(name, str):
            for ref in refs:
                if isinstance(ref, str):
                    deps.add_edge(ref, name)
        prev = name if isinstance(name, str) else None
    try:
        cycle = nx.find_cycle(deps)
    except nx.NetworkXNoCycle:
        return None
    return [edge[0] for edge in cycle] + [cycle[0][0]]
