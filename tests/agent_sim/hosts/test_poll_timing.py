"""When hsflowd's counter samples go out (sflow_poller.c, mod_docker.c, evbus.c).

- hsflowd ticks once a second; ``sfl_poller_set_sFlowCpInterval`` arms a poller with a countdown
  ``sfl_random(interval)`` (1..interval), each tick decrements it, at 0 it polls and is reset
  to the interval;
- a container's poller is armed when its start event creates it (``getVM``); the inspect that
  follows queues its first stats request for ``now.tv_sec + HSP_DOCKER_WAIT_STATS`` (3 s),
  independently of the countdown.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

import pytest

from sflowlab.agent_sim.host import FIRST_STATS_DELAY_S, HostAgent, HostSpec
from sflowlab.agent_sim.sinks import MemorySink
from sflowlab.codec import COUNTER_SAMPLES

if TYPE_CHECKING:
    from conftest import Helpers

POLLING = 10


def _sample_times(sim: Helpers, sink: MemorySink) -> dict[tuple[int, int], list[float]]:
    """Emission times of each data source's counter samples (the sink drained), checked to be
    in sequence."""
    times: dict[tuple[int, int], list[float]] = {}
    seqs: dict[tuple[int, int], list[int]] = {}
    for now, s in sim.samples(sim.decoded(sink), COUNTER_SAMPLES):
        source = (s.source_id_type, s.source_id_index)
        times.setdefault(source, []).append(now)
        seqs.setdefault(source, []).append(s.sequence_number)
    for source, numbers in seqs.items():
        assert numbers == list(range(1, len(numbers) + 1)), source
    return times


def test_container_first_sample_and_polls_follow_hsflowd(sim: Helpers) -> None:
    rng = random.Random(5)
    sink = MemorySink()
    host = HostAgent(HostSpec("docker1", "10.0.0.5", sampling=0, polling_s=POLLING,
                              uuid="00000000-0000-0000-0000-000000000001"), sink, rng)
    expected: dict[tuple[int, int], list[float]] = {}
    countdowns = []
    step, end = 0.25, 80.0
    for i in range(int(end / step)):
        now = i * step
        if i % 3 == 1 and now < 40:  # starts at .25, .5, .75 and whole seconds
            replay = random.Random()
            replay.setstate(rng.getstate())
            countdown = replay.randint(1, POLLING)  # sfl_random(interval): 1..interval
            c = host.start_container(f"c{i}", now, container_id=f"{i:02x}" * 32)
            second = math.floor(now)
            polls = [second + countdown + n * POLLING
                     for n in range(int((end - second - countdown) // POLLING) + 1)]
            expected[(3, c.ds_index)] = sorted([second + FIRST_STATS_DELAY_S, *polls])
            countdowns.append(countdown)
        host.tick(now)
    host.tick(end)
    assert {k: v for k, v in _sample_times(sim, sink).items() if k[0] == 3} == expected
    assert set(countdowns) == set(range(1, POLLING + 1))  # 53 draws cover 1..10


def test_first_sample_two_to_three_seconds_after_start(sim: Helpers) -> None:
    sink = MemorySink()
    host = HostAgent(HostSpec("docker1", "10.0.0.5", sampling=0, polling_s=0), sink,
                     random.Random(1))
    starts = {host.start_container("a", 10.0).ds_index: 10.0}
    host.tick(10.5)
    starts[host.start_container("b", 10.75).ds_index] = 10.75
    for i in range(22, 40):
        host.tick(i / 2)
    # polling 0 disables the countdown; the waitQ's first sample still goes out
    assert _sample_times(sim, sink) == {(3, index): [13.0] for index in starts}


def test_host_and_bridge_pollers_are_armed_at_the_agents_start(sim: Helpers) -> None:
    start, seed = 100.0, 3
    sink = MemorySink()
    host = HostAgent(HostSpec("docker1", "10.0.0.5", sampling=400, polling_s=POLLING,
                              uuid="00000000-0000-0000-0000-000000000001"), sink,
                     random.Random(seed), start)
    for i in range(1, 2 * 45 + 1):
        host.tick(start + i / 2)
    times = _sample_times(sim, sink)
    assert set(times) == {(2, 1), (0, 3)}
    host_times, bridge_times = times[(2, 1)], times[(0, 3)]
    countdown = random.Random(seed).randint(1, POLLING)  # the first draw: the host's poller
    assert host_times == [start + countdown + n * POLLING for n in range(len(host_times))]
    assert len(host_times) == 4 + (countdown <= 5)
    first = bridge_times[0] - start
    assert first == int(first) and 1 <= first <= POLLING
    assert bridge_times == [bridge_times[0] + n * POLLING for n in range(len(bridge_times))]


@pytest.mark.parametrize("polling", [2.5, 0.5])
def test_polling_is_whole_seconds(polling: float) -> None:
    with pytest.raises(ValueError, match="whole seconds"):
        HostSpec("docker1", "10.0.0.5", polling_s=polling)
