"""Coeffection Workflows: settings, errors and the command line shared by every part."""
