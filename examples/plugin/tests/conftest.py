# Lets the tests run from a source checkout where the plugin is not installed;
# an installed cadenza_silence (pip install ./examples/plugin) takes precedence.
import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("cadenza_silence") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
