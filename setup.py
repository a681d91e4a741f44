"""Shim for tools that still call setup.py (Beam's --setup_file stages the package with it)."""

from setuptools import setup

setup()
