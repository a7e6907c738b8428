import json
import subprocess
import sys

CHILD = """
import json
from winback.kit.resources import peak_rss_mb
before = peak_rss_mb()
block = bytearray(256 * 1024 * 1024)  # zero-filled: every page is touched
print(json.dumps([before, peak_rss_mb()]))
"""


def test_peak_rss_grows_with_what_a_fresh_process_touches():
    # a fresh process: in this one the high-water mark may already be above anything we add
    before, after = json.loads(subprocess.run([sys.executable, "-c", CHILD], check=True, capture_output=True,
                                              text=True).stdout)
    assert before > 0
    assert after >= before + 200
