"""The tape as a picture: the graph of recorded ops behind a tensor, as DOT text or an image.

    graph = cr.viz.draw(loss, model)      # before backward: every node's gradient is kept
    loss.backward()
    graph.render("graph.png")            # or graph.source (DOT), or show it in Jupyter

One box per recorded op (its name, output shape and, once backward has run, the norm of the
gradient that reached it); one oval per leaf (a parameter's name from ``model``, its shape,
its ``.grad`` norm). Drawing before ``backward`` registers a hook on each op's output that
keeps only the gradient's norm; drawn after, the ops show none (their gradients are gone) and
the leaves show ``.grad``. Big graphs stay readable: ops are grouped by the layer their
parameters belong to, numbered sibling layers of the same structure (a GPT's blocks ``h.1``
to ``h.3``) fold into one box each, and ``depth`` keeps only the ops that many steps from
the tensor. Images need Graphviz's ``dot`` (Debian: ``apt-get install graphviz``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.engine.tensor import Tensor

#: graphs with more ops than this are drawn top to bottom, grouped by layer, and fold repeated
#: layers unless told otherwise
FOLD_ABOVE = 30


@dataclass
class _Node:
    key: int
    label: str
    shape: tuple[int, ...]
    layer: str = ""
    leaf: bool = False
    trainable: bool = False
    tensor: Any = None  # leaves only: read .grad when drawn
    grad_norm: float | None = None
    note: str = ""
    parents: list[int] = field(default_factory=list)


class Graph:
    """The graph behind a tensor; ``source`` is its DOT text, ``render`` writes an image."""

    def __init__(self, root: Tensor, names: dict[int, str], depth: int | None,
                 fold: bool | None) -> None:
        self.nodes: dict[int, _Node] = {}
        self._hooks: list[Any] = []
        self.root = id(root)
        self._walk(root, names, depth)
        self.order = self._inputs_first()  # every node after the nodes it reads
        self._assign_layers()
        self.ops = sum(not node.leaf for node in self.nodes.values())
        self.big = self.ops > FOLD_ABOVE
        self.fold = self.big if fold is None else fold

    # -------------------------------------------------------------- building
    def _walk(self, root: Tensor, names: dict[int, str], depth: int | None) -> None:
        levels = {id(root): 0}
        queue = deque([root])  # breadth first: each node's level is its shortest path
        while queue:
            tensor = queue.popleft()
            key, level = id(tensor), levels[id(tensor)]
            if key in self.nodes:
                continue
            if tensor.grad_fn is None:
                name = names.get(key, "data" if not tensor.requires_grad else "leaf")
                self.nodes[key] = _Node(key, name, tuple(tensor.shape), leaf=True,
                                        trainable=tensor.requires_grad, tensor=tensor,
                                        layer=name.rpartition(".")[0] if key in names else "")
                continue
            node = _Node(key, tensor.grad_fn.name, tuple(tensor.shape))
            self.nodes[key] = node
            if tensor.requires_grad:
                self._hooks.append(tensor.register_hook(self._keeper(node)))
            if depth is not None and level >= depth:
                if any(parent is not None for parent in tensor._parents):
                    node.note = f"(+ inputs beyond depth {depth})"
                continue
            for parent in tensor._parents:
                if parent is None:
                    continue
                node.parents.append(id(parent))
                levels.setdefault(id(parent), level + 1)
                queue.append(parent)

    @staticmethod
    def _keeper(node: _Node) -> Any:
        def keep(grad: np.ndarray) -> None:
            if node.grad_norm is None:  # the first backward only; later ones cost nothing
                node.grad_norm = float(np.linalg.norm(grad.astype(np.float64).ravel()))
        return keep

    def _assign_layers(self) -> None:
        """Each op's layer: the module path its parameters share, or without parameters the
        longest path its inputs share (a residual add sits in the block above its branch)."""
        for key in self.order:
            node = self.nodes[key]
            if node.leaf:
                continue
            parents = [self.nodes[p] for p in node.parents if p in self.nodes]
            owned = [p.layer for p in parents if p.leaf and p.layer]
            if owned:
                node.layer = _common_prefix(owned)
                continue
            layers = [p.layer for p in parents if not p.leaf]
            if not layers:
                continue
            # The shared path, carried down to the numbered layer the deepest input is in: a
            # block's residual add joins its branch's block (h.1), not the list (h).
            common = _common_prefix(layers)
            deepest = max(layers, key=lambda layer: layer.count(".")).split(".")
            node.layer = common
            for i in range(len(common.split(".")) if common else 0, len(deepest)):
                if deepest[i].isdigit():
                    node.layer = ".".join(deepest[:i + 1])
                    break

    def _inputs_first(self) -> list[int]:
        order: list[int] = []
        seen: set[int] = set()
        for start in self.nodes:
            if start in seen:
                continue
            seen.add(start)
            stack = [(start, iter(self.nodes[start].parents))]
            while stack:
                key, parents = stack[-1]
                for parent in parents:
                    if parent in self.nodes and parent not in seen:
                        seen.add(parent)
                        stack.append((parent, iter(self.nodes[parent].parents)))
                        break
                else:
                    stack.pop()
                    order.append(key)
        return order

    # -------------------------------------------------------------- drawing
    @property
    def source(self) -> str:
        """The graph as DOT text (Graphviz's language)."""
        folded, boxes = self._folds() if self.fold else ({}, [])
        lines = ["digraph tape {",
                 f'  rankdir={"TB" if self.big else "LR"};',
                 '  node [fontname="Helvetica", fontsize=10];',
                 '  edge [color="#555555", arrowsize=0.6];']
        ids = {key: f"n{i}" for i, key in enumerate(self.order)}  # stable names, inputs first
        clusters: dict[str, list[str]] = {}
        loose: list[str] = []
        for key in self.order:
            node = self.nodes[key]
            if key in folded:
                continue
            line = self._node_line(node, ids[key])
            block = _block(node.layer) if self.big else None
            (clusters.setdefault(block, []) if block else loose).append(line)
        for block in [b for b, members in clusters.items() if len(members) < 2]:
            loose.extend(clusters.pop(block))  # a group of one is no group
        lines.extend("  " + line for line in loose)
        lines.extend("  " + box for box in boxes)
        for i, (layer, members) in enumerate(sorted(clusters.items())):
            lines.append(f"  subgraph cluster_{i} {{")
            lines.append(f'    label="{_escape(layer)}"; style="rounded,dashed"; '
                         'color="#999999"; fontsize=9;')
            lines.extend("    " + member for member in members)
            lines.append("  }")
        edges: set[tuple[str, str]] = set()
        for node in self.nodes.values():
            target = folded.get(node.key, ids[node.key])
            for parent in node.parents:
                if parent in self.nodes:
                    source = folded.get(parent, ids[parent])
                    if source != target:
                        edges.add((source, target))
        rank = {name: i for i, name in enumerate([*ids.values(), *sorted(set(folded.values()))])}
        lines.extend(f"  {a} -> {b};" for a, b in sorted(edges, key=lambda e: (rank[e[1]],
                                                                                rank[e[0]])))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _node_line(self, node: _Node, dot_id: str) -> str:
        parts = [node.label, "×".join(map(str, node.shape)) if node.shape else "scalar"]
        norm = node.grad_norm
        if node.leaf and node.tensor is not None and node.tensor.grad is not None:
            norm = float(np.linalg.norm(np.asarray(node.tensor.grad, np.float64).ravel()))
        if norm is not None:
            parts.append(f"|grad| {norm:.3g}")
        if node.note:
            parts.append(node.note)
        label = "\\n".join(_escape(p) for p in parts)
        if node.leaf:
            colour = "#dbeafe" if node.trainable else "#eeeeee"
            style = f'shape=ellipse, style=filled, fillcolor="{colour}"'
        else:
            style = 'shape=box, style="rounded,filled", fillcolor="#fef3c7"'
        if node.key == self.root:
            style += ", penwidth=2"
        return f'{dot_id} [label="{label}", {style}];'

    def _folds(self) -> tuple[dict[int, str], list[str]]:
        """Numbered sibling layers built like the first of them (a GPT's ``h.1`` to ``h.3``
        like ``h.0``), each set folded into one box: (node key -> the box's DOT id, the
        boxes' DOT lines)."""
        groups: dict[str, dict[int, list[_Node]]] = {}
        for node in self.nodes.values():
            block = _block(node.layer)
            if block is not None:  # its list's path, and its place in the list
                prefix, _, index = block.rpartition(".")
                groups.setdefault(prefix, {}).setdefault(int(index), []).append(node)
        folded: dict[int, str] = {}
        boxes: list[str] = []
        for n, (prefix, members) in enumerate(sorted(groups.items())):
            where = f"{prefix}." if prefix else ""

            def signature(index: int) -> Counter:
                start = f"{where}{index}."
                return Counter((node.leaf, node.label.removeprefix(start))
                               for node in members[index])

            first, *rest = sorted(members)
            same = [i for i in rest if signature(i) == signature(first)]
            if len(same) < 2:
                continue
            names = (f"{where}{same[0]} … {where}{same[-1]}" if same == list(
                range(same[0], same[-1] + 1)) else ", ".join(f"{where}{i}" for i in same))
            ops = sum(not node.leaf for node in members[first])
            label = (f"{names}\\n{len(same)} layers built like {where}{first}, "
                     f"{ops} ops each")
            box = f"fold{n}"
            boxes.append(f'{box} [label="{label}", shape=box3d, style=filled, '
                         'fillcolor="#e5e7eb"];')
            for i in same:
                for node in members[i]:
                    folded[node.key] = box
        return folded, boxes

    def render(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the graph as an image; the format is the suffix (.svg, .png, .pdf)."""
        from chainrule import io

        path = Path(path)
        fmt = path.suffix.lstrip(".").lower()
        if fmt not in ("svg", "png", "pdf"):
            raise ValueError(f"render: {path} must end in .svg, .png or .pdf (or use "
                             ".source for the DOT text)")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        image = _run_dot(self.source, fmt)
        io.atomic_write(path, lambda file: file.write(image))
        return path

    def _repr_svg_(self) -> str | None:
        """Jupyter shows the graph inline where Graphviz is installed."""
        if shutil.which("dot") is None:
            return None
        return _run_dot(self.source, "svg").decode("utf-8")

    def __repr__(self) -> str:
        leaves = len(self.nodes) - self.ops
        return (f"<chainrule.viz.Graph: {self.ops} ops, {leaves} leaves; .source for its DOT "
                "text>")

    def remove_hooks(self) -> None:
        """Stop keeping gradient norms (if backward is not going to run)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()


def draw(tensor: Tensor, model: Any = None, *, names: dict[str, Tensor] | None = None,
         depth: int | None = None, fold: bool | None = None) -> Graph:
    """The graph of ops behind ``tensor``; ``model`` names its parameters and buffers.

    ``names`` labels other leaves (``{"x": x, "target": y}``); unnamed ones without a gradient
    are "data". ``depth`` keeps only ops within that many steps of ``tensor``; ``fold`` folds
    repeated numbered layers (by default when the graph has more than FOLD_ABOVE ops).
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw: expected a chainrule Tensor, got {type(tensor).__name__}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int)
                              or depth < 1):
        raise ValueError(f"draw: depth must be a whole number of at least 1, got {depth!r}")
    if tensor.grad_fn is None:
        raise ValueError("draw: this tensor was not made by a recorded op (a leaf, or made "
                         "under no_grad), so there is no graph behind it")
    labels: dict[int, str] = {}
    for label, value in (names or {}).items():
        if not isinstance(value, Tensor):
            raise TypeError(f"draw: names[{label!r}] must be a Tensor, got "
                            f"{type(value).__name__}")
        labels[id(value)] = label
    if model is not None:
        for key, value in list(model.named_parameters()) + list(model.named_buffers()):
            labels.setdefault(id(value), key)
    return Graph(tensor, labels, depth, fold)


def _block(layer: str) -> str | None:
    """The numbered layer ``layer`` is in (``h.2`` for ``h.2.attn.c_proj``), or None."""
    parts = layer.split(".") if layer else []
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:i + 1])
    return None


def _common_prefix(layers: list[str]) -> str:
    parts = [layer.split(".") if layer else [] for layer in layers]
    common: list[str] = []
    for group in zip(*parts):
        if len(set(group)) != 1:
            break
        common.append(group[0])
    return ".".join(common)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _run_dot(source: str, fmt: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("drawing an image needs Graphviz's dot program, which is not "
                           "installed: apt-get install graphviz (Debian, Ubuntu), brew install "
                           "graphviz (macOS); graph.source is the DOT text without it")
    done = subprocess.run([dot, f"-T{fmt}"], input=source.encode("utf-8"),
                          capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"Graphviz's dot failed: {done.stderr.decode(errors='replace')}")
    return done.stdout
