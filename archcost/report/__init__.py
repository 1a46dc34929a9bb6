"""Formatting of analysis results. Reports never compute costs: they only lay out what the
passes computed."""
