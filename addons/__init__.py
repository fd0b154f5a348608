"""mitmproxy addons: thin adapters that feed live flows to `analyzers`."""
