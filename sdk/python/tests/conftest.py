"""Puts this directory (`sample_tasks`) on the path, and the SDK's source only when no
`batchapi` is installed: the e2e suite runs these tests against the installed wheel."""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if importlib.util.find_spec("batchapi") is None:
    sys.path.insert(0, os.path.dirname(HERE))
