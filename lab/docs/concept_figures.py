"""The two pictures of the Concepts page, as SVG text: one episode, and a meta-batch of them.

``python -m lab.docs.generate`` writes them to ``docs/assets/`` (:func:`lab.docs.site_docs.site_pages`); a
test keeps the committed files equal to what this module draws.
"""

from __future__ import annotations

__all__ = ["episode_svg", "meta_batch_svg"]

COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1")
FONT = 'font-family="sans-serif" font-size="13"'


def _svg(width: int, height: int, body: list[str]) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" {FONT}>',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            *body,
            "</svg>",
            "",
        ]
    )


def _box(x: float, y: float, size: float, colour: str, label: str, filled: bool) -> str:
    fill = colour if filled else "white"
    ink = "white" if filled else colour
    return (
        f'<rect x="{x}" y="{y}" width="{size}" height="{size}" rx="4" fill="{fill}" '
        f'stroke="{colour}" stroke-width="2"/>'
        f'<text x="{x + size / 2}" y="{y + size / 2 + 5}" text-anchor="middle" fill="{ink}">'
        f"{label}</text>"
    )


def episode_svg(ways: int = 5, queries: int = 15, shown: int = 3) -> str:
    """One N-way 1-shot episode: a labelled support image per class, then unlabelled queries of
    the same classes (colour = class; the learner sees the query labels only in its loss);
    ``shown`` of the ``queries`` per class are drawn."""
    size, gap, left = 34, 10, 150
    body = [
        '<text x="10" y="40">support set</text>',
        f'<text x="10" y="58" fill="#555">N x K = {ways} x 1</text>',
        '<text x="10" y="120">query set</text>',
        f'<text x="10" y="138" fill="#555">N x Q = {ways} x {queries}</text>',
        f'<text x="10" y="156" fill="#555">({shown} per class shown)</text>',
    ]
    for c in range(ways):
        x = left + c * (size + gap)
        body.append(_box(x, 25, size, COLOURS[c % len(COLOURS)], str(c), filled=True))
        for q in range(shown):
            body.append(_box(x, 95 + q * (size + 6), size, COLOURS[c % len(COLOURS)], "?", False))
    right = left + ways * (size + gap) + 10
    body += [
        f'<text x="{right}" y="46">adapt(support_x, support_y)</text>',
        f'<text x="{right}" y="130">predict(state, query_x)</text>',
        f'<text x="{right}" y="150" fill="#555">scored against query_y</text>',
        f'<line x1="{right + 60}" y1="54" x2="{right + 60}" y2="112" stroke="#333" '
        'stroke-width="1.5" marker-end="url(#arrow)"/>',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="6" refY="3" '
        'orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#333"/></marker></defs>',
    ]
    return _svg(right + 200, 95 + shown * (size + 6) + 10, body)


def meta_batch_svg(tasks: int = 4) -> str:
    """A meta-batch: T episodes of different classes, each giving a query loss after adapting on
    its support set; their mean is the meta-loss whose gradient updates the learner."""
    width, row = 600, 46
    body = ['<text x="10" y="22">EpisodeBatch: tensors with a leading task dimension T</text>']
    for t in range(tasks):
        y = 36 + t * row
        label = "T" if t == tasks - 1 else str(t + 1)
        body += [
            f'<rect x="10" y="{y}" width="250" height="36" rx="4" fill="#f4f4f4" stroke="#999"/>',
            f'<text x="20" y="{y + 23}">task {label}: support, query</text>',
            f'<line x1="262" y1="{y + 18}" x2="330" y2="{y + 18}" stroke="#333" '
            'marker-end="url(#arrow)"/>',
            f'<text x="338" y="{y + 23}">query loss L{label}</text>',
        ]
    bottom = 36 + tasks * row + 8
    body += [
        f'<line x1="330" y1="{bottom - 6}" x2="{width - 20}" y2="{bottom - 6}" stroke="#333"/>',
        f'<text x="338" y="{bottom + 14}">meta-loss = mean of L1 .. LT</text>',
        f'<text x="338" y="{bottom + 32}" fill="#555">.backward(): the meta-gradient</text>',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="6" refY="3" '
        'orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#333"/></marker></defs>',
    ]
    return _svg(width, bottom + 44, body)
