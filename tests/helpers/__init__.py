"""Helpers shared by test modules. Test modules import from here (or from a conftest's
fixtures), never from another ``test_*.py``."""
