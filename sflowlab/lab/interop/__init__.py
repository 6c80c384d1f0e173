"""Helpers that run real third parties: network namespaces, Open vSwitch, pmacct."""
