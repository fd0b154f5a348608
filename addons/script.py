"""Load ocitrace into plain mitmproxy: `mitmdump -s addons/script.py --set ocitrace_out=DIR` (or mitmweb, where
the OCI content view shows manifests and indexes as the report does).

The upstream map comes first: it chooses where a call goes before its body streams.
"""

from ocitrace.addons.contentview import register
from ocitrace.addons.registry_trace import RegistryTrace
from ocitrace.addons.upstream_map import UpstreamMap

register()  # the OCI content view, for mitmweb and the console
addons = [UpstreamMap(), RegistryTrace()]
