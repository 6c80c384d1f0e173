"""The live lab: a scenario on the local Docker engine's swarm, with the real host agent
(``sflowlab agent``), the production collector (``sflowlab collector``) and locust.

- ``image``: the service image, built locally from a static busybox (no registry);
- ``containers``: a container's network namespace under a name, its docker0 port (tests, benches);
- ``swarm``: the swarm (joined or initialised), the service (dnsrr, host-mode publish), its
  tasks' published ports, the cleanup by label, the engine lock;
- ``load``: locust as a subprocess (``locustfile``: the scenario's load profile as a
  LoadTestShape, requests spread over the tasks' ports);
- ``processes``: the agent and the collector as subprocesses;
- ``sampler``: the timeline, read each second from the collector's REST API and the engine;
- ``compare``: the live run against the simulated one (``compare.csv``);
- ``runner``: ``run_live`` (``sflowlab run --live``); ``lab``: ``sflowlab lab up|down``.
"""
