"""Usage as people read it: ``text`` for a terminal (a table, a bar chart), ``dashboard``
for a browser (one self-contained HTML page). Pure functions of what `Registry` returns,
shared by the command line and the server."""
