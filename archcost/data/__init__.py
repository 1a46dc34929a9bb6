"""Data files shipped with archcost: ``accuracy.csv`` (published accuracies; see archcost/accuracy.py)."""
