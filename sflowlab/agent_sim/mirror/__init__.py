"""The mirror agent: a real Linux Docker host seen through sFlow, as hsflowd would send it.

- ``links``: interfaces and their counters, link events, veth peers, bridge FDBs (pyroute2);
- ``tap``: kernel-sampled packets of a bridge (AF_PACKET with a classic BPF random filter);
- ``containers``: Docker containers, their events and stats (docker SDK);
- ``hostinfo``: the host's counters from /proc;
- ``agent``: the wiring onto agent_sim's ``Agent``/``Poller``/``Sampler`` with a real clock;
- ``config``: the settings (command line, TOML file like hsflowd.conf's essentials).

pyroute2 and docker come with the ``host`` extra; only ``agent`` imports the modules that need
them, so the rest of agent_sim installs without.
"""
