"""mitmproxy addons: thin adapters that feed live flows to `ocitrace.analyzers`."""
