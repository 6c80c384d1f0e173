"""The deterministic lab, in three layers (each may import the ones below it, never above):

- ``scenario``: scenario files (``model``), the runner that composes a run on one clock, the
  assertions, the recording and its outputs, the chart, and the pytest plugin.
- ``doubles``: the third parties the controllers drive, speaking their real protocols over HTTP:
  the Docker swarm (``swarm_model``, ``swarm_api``), the Cumulus ACL switch (``switch_api``,
  ``acl_rules``, ``acl_fabric``), and their timers (``scheduler``).
- ``interop``: helpers that run real third parties (network namespaces, Open vSwitch, pmacct).

The doubles serve HTTP with :mod:`sflowlab.http`, the layer the collector's REST API uses too.
"""
