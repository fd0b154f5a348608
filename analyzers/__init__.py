"""ocitrace's analysis core: capture -> calls -> classification and decoded objects -> report.

Pure: it needs no running proxy and never imports `addons`.
"""
