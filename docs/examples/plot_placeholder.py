"""
Placeholder
===========

Replaced by the real examples.
"""

print("hello")
