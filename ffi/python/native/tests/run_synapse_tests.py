"""Runs Synapse's own tests under twisted.trial with roomgraph's drop-in installed.

Usage: python run_synapse_tests.py SYNAPSE_SRC TEST_MODULE...   (``tests.state.test_v2`` ...)

SYNAPSE_SRC is Synapse's unpacked source distribution: its ``tests`` package is imported from there,
Synapse itself from the installed package (the source tree is put last on the path, since its
``synapse`` lacks the compiled parts). ``roomgraph`` must be importable. Installs the drop-in
before the tests are imported (they bind ``resolve_events_with_store`` at import), runs them, then
prints the drop-in's counters and fails unless the tests passed and roomgraph resolved at least once.
"""

import sys

sys.path.append(sys.argv.pop(1))

import roomgraph.synapse as dropin  # noqa: E402

dropin.install()

from twisted.scripts import trial  # noqa: E402

sys.argv = ["trial", *sys.argv[1:]]
try:
    trial.run()
    code = 0
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else 1

print(
    f"roomgraph drop-in: {dropin.resolutions} resolutions by roomgraph "
    f"({dropin.cache_hits} from the conflict cache), {dropin.fallbacks} by Synapse's resolver"
)
for reason, n in sorted(dropin.fallback_reasons.items()):
    print(f"  fallback: {n} x {reason}")
if code == 0 and dropin.resolutions == 0:
    print("roomgraph drop-in: never ran", file=sys.stderr)
    code = 1
sys.exit(code)
