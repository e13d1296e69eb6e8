#!/usr/bin/python3
"""Placeholder: filled by issue 13's work on this area."""
