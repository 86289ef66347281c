"""Coeffection Workflows. This package is the base every part stands on: settings, errors, the
clock, signatures, what logs may say, which addresses outbound calls may reach. It imports
nothing of ours. ``coeflow.tools`` on top of everything is the command line and the dev tools.
"""
