"""Helper library for the course *How Attention Learns*.

Each module names the chapter that introduces it; see DESIGN.md for the layout.
"""

__version__ = "0.1.0"
