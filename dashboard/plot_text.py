"""Text for plotly figures. Plotly draws a subset of HTML in trace names (the legend), titles,
annotations, hover text and tick labels: `<a href>` is a link, `<b>`, `<br>`, `<span style>`
format. So a label's value (version="<a href=https://evil.example>v2</a>"), or an error message
quoting one, would become a link or markup in a chart. Every such string goes through
`plot_text` where it enters a figure; plotly turns the entities back into the characters, so
the viewer reads the label as it is. Dash's html components need nothing: React escapes text.
"""

from __future__ import annotations

import html


def plot_text(value: object) -> str:
    """`value` as text plotly shows literally: &, < and > escaped (quotes are harmless outside
    a tag, and plotly would show &quot; as it is)."""
    return html.escape(str(value), quote=False)
