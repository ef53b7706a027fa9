"""Pictures of a graph: Mermaid text, and a self-contained SVG (layered left to right)."""
from __future__ import annotations

from html import escape


from ..printable import printable
from .dag import topological_order
from .validate import Resolved
from .workflow import GraphRef, Link


def _edges(resolved: Resolved):
    for name, node in resolved.nodes.items():
        for key, binding in node.bindings.items():
            if isinstance(binding, Link) and binding.node in resolved.nodes:
                yield binding.node, name, f"{binding.output} → {key}"
            elif isinstance(binding, GraphRef):
                yield f"${binding.name}", name, key


def _label(text: str) -> str:
    """Text inside a quoted Mermaid label: markup and quotes as entities, control characters escaped."""
    return escape(printable(text), quote=False).replace('"', "#quot;")


def _svg_text(text: str) -> str:
    """Text of an SVG element: markup escaped, and no control characters (XML refuses most of them)."""
    return escape(printable(text))


def mermaid(resolved: Resolved) -> str:
    """Mermaid flowchart text (paste into any Markdown renderer that supports it)."""
    ids = {}

    def ident(name: str) -> str:
        return ids.setdefault(name, f"n{len(ids)}")

    lines = ["flowchart LR"]
    for name, node in resolved.nodes.items():
        device = f"<br/><i>{_label(node.device)}</i>" if node.device else ""
        lines.append(f'    {ident(name)}["<b>{_label(name)}</b><br/>{_label(node.spec.type_name)}{device}"]')
    for name in {source for source, _, _ in _edges(resolved) if source.startswith("$")}:
        lines.append(f'    {ident(name)}(["{_label(name)}"])')
    for out, link in resolved.outputs.items():
        lines.append(f'    {ident("=>" + out)}[/"{_label(out)}"/]')
        lines.append(f'    {ident(link.node)} -->|"{_label(link.output)}"| {ident("=>" + out)}')
    for source, target, label in _edges(resolved):
        lines.append(f'    {ident(source)} -->|"{_label(label)}"| {ident(target)}')
    return "\n".join(lines) + "\n"


def svg(resolved: Resolved, title: str = "") -> str:
    """An SVG drawing: graph inputs on the left, then nodes by depth, outputs on the right."""
    labels: dict[tuple[str, str], str] = {}  # one arrow per pair of boxes; the last label wins
    for source, target, label in _edges(resolved):
        labels[source, target] = label
    for out, link in resolved.outputs.items():
        labels[link.node, "=>" + out] = link.output
    successors: dict[str, list[str]] = {}
    predecessors: dict[str, list[str]] = {}
    for source, target in labels:
        for name in (source, target):
            successors.setdefault(name, [])
            predecessors.setdefault(name, [])
        successors[source].append(target)
        predecessors[target].append(source)
    for name in resolved.nodes:
        successors.setdefault(name, [])
        predecessors.setdefault(name, [])
    layer = {}
    for name in topological_order(successors):
        layer[name] = 1 + max((layer[p] for p in predecessors[name]), default=-1)
    columns: dict[int, list[str]] = {}
    for name, depth in layer.items():
        columns.setdefault(depth, []).append(name)
    box_w, box_h, gap_x, gap_y, pad = 190, 46, 70, 24, 20
    pos = {}
    for depth, names in sorted(columns.items()):
        for row, name in enumerate(sorted(names)):
            pos[name] = (pad + depth * (box_w + gap_x), pad + 24 + row * (box_h + gap_y))
    width = pad * 2 + (max(columns) + 1) * (box_w + gap_x) if columns else 200
    height = pad * 2 + 24 + max((len(v) for v in columns.values()), default=1) * (box_h + gap_y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
             f'<text x="{pad}" y="{pad + 4}" font-weight="bold">{_svg_text(title)}</text>']
    placed: list[tuple[float, float, float]] = []  # labels drawn so far: centre x, baseline y, half width
    for source, target in ((s, t) for s in successors for t in successors[s]):
        (x1, y1), (x2, y2) = pos[source], pos[target]
        label = labels[source, target]
        sx, sy, tx, ty = x1 + box_w, y1 + box_h / 2, x2, y2 + box_h / 2
        mid = (sx + tx) / 2
        parts.append(f'<path d="M{sx},{sy} C{mid},{sy} {mid},{ty} {tx},{ty}" fill="none" stroke="#555" '
                     f'marker-end="url(#arrow)"/>')
        if label:
            lx, ly = _free_spot(placed, mid, (sy + ty) / 2 - 3, 6 * len(label))
            parts.append(f'<text x="{lx}" y="{ly}" text-anchor="middle" fill="#333" '
                         f'font-size="10">{_svg_text(label)}</text>')
    for name, (x, y) in pos.items():
        if name.startswith("$"):
            fill, line1, line2 = "#e8f4e8", name[1:], "graph input"
        elif name.startswith("=>"):
            fill, line1, line2 = "#fdf0e0", name[2:], "graph output"
        else:
            node = resolved.nodes[name]
            fill, line1, line2 = "#e8eef8", name, node.spec.type_name + (f" @ {node.device}" if node.device else "")
        parts.append(f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="8" fill="{fill}" stroke="#335"/>')
        parts.append(f'<text x="{x + 10}" y="{y + 19}" font-weight="bold">{_svg_text(line1)}</text>')
        parts.append(f'<text x="{x + 10}" y="{y + 36}" fill="#444">{_svg_text(line2)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _free_spot(placed: list[tuple[float, float, float]], x: float, y: float, width: float) -> tuple[float, float]:
    """The nearest baseline at or below `y` where a label of `width` centred at `x` overlaps none drawn yet."""
    half, line = width / 2, 12
    while any(abs(x - px) < half + ph and abs(y - py) < line for px, py, ph in placed):
        y += line
    placed.append((x, y, half))
    return x, y
