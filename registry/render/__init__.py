"""Usage as people read it, shared by the command line and the server; pure functions of
what `RegistryApi` returns (no SQL here).

For a terminal: ``text`` (a table, a bar chart). For a browser, the dashboard:
``dashboard`` (the page at ``GET /``), ``items`` (a page per Query LLM and Query
Model), ``charts`` (stacked bars in SVG), ``tables`` (HTML tables and their CSV),
``page`` (the document, its style, script and form), ``window`` (the query a page
answers). Shared by both: ``labels`` (readable names of groups) and ``numbers``
(rounding for reading, alignment on the decimal point).
"""
