"""Only the OCI content view, for looking at recorded sessions: `mitmweb -s addons/view.py -r flows.mitm`."""

from ocitrace.addons.contentview import register

register()
