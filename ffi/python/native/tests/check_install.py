"""install() / uninstall() / Module: the drop-in goes in and comes out of every binding.

    python check_install.py SYNAPSE_SRC
"""

import sys

sys.path.append(sys.argv.pop(1))

import synapse.event_auth  # noqa: E402,F401  (before synapse.state: Synapse's import cycle)
import synapse.state  # noqa: E402
from synapse.state import v1, v2  # noqa: E402
from tests.state import test_v2  # noqa: E402  (binds v2's function at import)

import roomgraph.synapse as dropin  # noqa: E402

synapse_v1, synapse_v2 = v1.resolve_events_with_store, v2.resolve_events_with_store
assert not dropin.installed()

dropin.install()
assert v2.resolve_events_with_store is dropin.resolve_events_with_store
assert v1.resolve_events_with_store is dropin.resolve_events_with_store_v1
assert test_v2.resolve_events_with_store is dropin.resolve_events_with_store
assert synapse.state.v2.resolve_events_with_store is dropin.resolve_events_with_store
patched = len(dropin._PATCHED)
dropin.install()
assert len(dropin._PATCHED) == patched, "install() twice patched twice"

dropin.uninstall()
assert v2.resolve_events_with_store is synapse_v2
assert v1.resolve_events_with_store is synapse_v1
assert test_v2.resolve_events_with_store is synapse_v2
assert not dropin.installed()
dropin.uninstall()

dropin.Module(config=dropin.Module.parse_config({}), api=None)
assert v2.resolve_events_with_store is dropin.resolve_events_with_store
# The drop-in hands back to the function it replaced, not to itself.
assert dropin._synapse("v2") is synapse_v2 and dropin._synapse("v1") is synapse_v1
dropin.uninstall()
print(f"install/uninstall: {patched} bindings replaced and restored")
