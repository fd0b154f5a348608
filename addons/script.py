"""Load ocitrace into plain mitmproxy: `mitmdump -s addons/script.py --set ocitrace_out=DIR`.

The upstream map comes first: it chooses where a call goes before its body streams.
"""

from ocitrace.addons.registry_trace import RegistryTrace
from ocitrace.addons.upstream_map import UpstreamMap

addons = [UpstreamMap(), RegistryTrace()]
