"""Jinja2 rendering of self-contained pages (autoescaped, inline assets, strict CSP)."""

from __future__ import annotations

import base64
import hashlib
import os
from functools import cache
from importlib import resources
from pathlib import Path

import jinja2

from pipeline.errors import PipelineInputError
from pipeline.io import _atomic_write


def _asset(name: str) -> str:
    """A file of ``pipeline/templates`` (``vendor/niivue/niivue.js`` for a subfolder)."""
    return resources.files("pipeline").joinpath("templates", *name.split("/")).read_text()


@cache
def environment() -> jinja2.Environment:
    """Jinja2 environment over ``pipeline/templates`` with autoescape always on."""
    folder = resources.files("pipeline").joinpath("templates")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["number"] = format_number
    return env


def format_number(value, digits: int = 3) -> str:
    """Short human form of a metric value: 3 significant digits, n/a for missing."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        if abs(value) >= 1000:
            return f"{value:.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def png_data_uri(path) -> str:
    """A PNG file as a ``data:`` URI (the page stays one file, offline)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PipelineInputError(path, f"cannot read the reportlet figure ({exc.strerror})") from exc
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise PipelineInputError(path, "reportlet figure is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def render_page(template: str, context: dict, out, *, scripts=("report.js",),
                styles=("report.css",)) -> int:
    """Render ``template`` with its CSS/JS inlined; write ``out`` atomically.

    The page carries a Content-Security-Policy that allows only its own
    inline scripts and style (by hash) and ``data:`` images: no network, and
    an injected ``<script>`` would not run even if escaping failed.

    Parameters
    ----------
    scripts, styles : sequence of str
        Files of ``pipeline/templates`` inlined in this order (the template gets
        ``inline_scripts``, ``inline_script`` (the first) and ``inline_style``).

    Returns
    -------
    int
        Size of the page in bytes.
    """
    code = [_asset(name) for name in scripts]
    style = "\n".join(_asset(name) for name in styles)
    csp = ("default-src 'none'; img-src data:; "
           f"style-src {_csp_hash(style)}; script-src {' '.join(_csp_hash(c) for c in code)}; "
           "base-uri 'none'; form-action 'none'")
    inline = [_markup(c, "script") for c in code]
    html = environment().get_template(template).render(
        **context, inline_script=inline[0] if inline else "", inline_scripts=inline,
        inline_style=_markup(style, "style"), csp=csp)
    data = html.encode("utf-8")
    _atomic_write(Path(out), lambda tmp: Path(tmp).write_bytes(data))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out, 0o666 & ~umask)  # readable like any page (mkstemp made it 0600)
    return len(data)


def _markup(text: str, tag: str):
    """``text`` inlined in a ``<script>`` or ``<style>`` element, which it must not close."""
    from markupsafe import Markup

    if f"</{tag}" in text.lower():
        raise ValueError(f"inline asset must not close its own <{tag}> element")
    return Markup(text)
