"""Abstract contract suites, one per port: subclass one and override its fixture to check an adapter."""
