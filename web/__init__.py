"""weft's web layer: the Quart app, its routes, and the command line."""
