"""The ELB's policies on their own: the seed's thresholds and the HPA-like rule, exact counts."""

from __future__ import annotations

import pytest

from sflowlab.controllers.policies import (
    HpaParams,
    HpaPolicy,
    Observation,
    ParamError,
    SeedParams,
    SeedPolicy,
    make_policy,
)


def seed(**params: float) -> SeedPolicy:
    return SeedPolicy(SeedParams.from_json(params))


def hpa(**params: float | None) -> HpaPolicy:
    return HpaPolicy(HpaParams.from_json(params))


# -- seed ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("replicas", "util", "bytes_", "target"), [
    (1, 1.5, 0, 2),             # util above util_max
    (1, 0.7, 100_001, 2),       # bytes above bytes_max
    (10, 5.0, 1e6, 10),         # at replicas_max
    (3, 0.4, 49_999, 2),        # both below their minimums
    (3, 0.4, 60_000, 3),        # util low, bytes in the band
    (3, 0.6, 10_000, 3),        # bytes low, util in the band
    (1, 0.0, 0, 1),             # at replicas_min
    (4, 1.0, 100_000, 4),       # on the maximums: not above
    (4, 0.5, 40_000, 4),        # util on its minimum: not below
])
def test_seed_steps_by_one_within_bounds(replicas: int, util: float, bytes_: float,
                                         target: int) -> None:
    decision = seed().decide(Observation(replicas, util, bytes_), 0.0)
    assert decision.target == target


def test_seed_reasons_name_the_threshold() -> None:
    assert seed().decide(Observation(1, 1.5, 0), 0).reason == "util 1.5 > 1"
    assert seed().decide(Observation(1, 0.1, 200_000), 0).reason == "bytes 200000 > 100000"
    assert seed().decide(Observation(2, 0.1, 10), 0).reason == \
        "util 0.1 < 0.5 and bytes 10 < 50000"


# -- hpa ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("replicas", "util", "target"), [
    (2, 1.5, 3),     # ceil(2 * 1.5)
    (3, 1.5, 5),     # ceil(4.5)
    (4, 0.5, 2),     # ceil(2.0): exactly, despite float noise
    (2, 1.08, 2),    # within tolerance 0.1
    (2, 0.92, 2),    # within tolerance below
    (2, 1.15, 3),    # ceil(2.3): outside tolerance
    (10, 1.11, 10),  # at replicas_max already
])
def test_hpa_desired_is_ceil_of_replicas_times_ratio(replicas: int, util: float,
                                                      target: int) -> None:
    policy = hpa(target_util=1.0, target_bytes=None, stabilization_s=0)
    assert policy.decide(Observation(replicas, util, 0.0), 0.0).target == target


def test_hpa_float_noise_does_not_add_a_replica() -> None:
    policy = hpa(target_util=0.3, target_bytes=None, stabilization_s=0)
    # 0.45 / 0.3 = 1.5000000000000002 in floating point; ceil(2 * 1.5) is 3, not 4
    assert policy.decide(Observation(2, 0.45, 0.0), 0.0).target == 3


def test_hpa_takes_the_largest_proposal_over_metrics() -> None:
    policy = hpa(target_util=1.0, target_bytes=50_000, stabilization_s=0)
    # util proposes ceil(2 * 0.5) = 1, bytes ceil(2 * 2.5) = 5
    assert policy.decide(Observation(2, 0.5, 125_000), 0.0).target == 5
    # both low: ceil(4 * 0.25) = 1 and ceil(4 * 0.2) = 1
    assert policy.decide(Observation(4, 0.25, 10_000), 0.0).target == 1


def test_hpa_limits_the_step_each_way_and_respects_bounds() -> None:
    policy = hpa(target_util=1.0, target_bytes=None, stabilization_s=0, max_step_up=2,
                 max_step_down=3, replicas_min=2, replicas_max=9)
    assert policy.decide(Observation(2, 5.0, 0), 0).target == 4     # desired 9, +2
    assert policy.decide(Observation(8, 5.0, 0), 0).target == 9     # desired 9 (max)
    assert policy.decide(Observation(8, 0.01, 0), 0).target == 5    # desired 2, -3
    assert policy.decide(Observation(3, 0.01, 0), 0).target == 2    # replicas_min
    assert policy.decide(Observation(12, 1.0, 0), 0).target == 9    # above max: back to max
    assert policy.decide(Observation(1, 1.0, 0), 0).target == 2     # below min: up to min


def test_hpa_scale_down_is_stabilised_over_the_window() -> None:
    policy = hpa(target_util=1.0, target_bytes=None, stabilization_s=30, max_step_down=10)
    assert policy.decide(Observation(4, 1.0, 0), 100.0).target == 4    # recommends 4
    assert policy.decide(Observation(4, 0.5, 0), 110.0).target == 4    # wants 2: held at 4
    assert policy.decide(Observation(4, 0.75, 0), 120.0).target == 4   # wants 3: held at 4
    assert policy.decide(Observation(4, 0.25, 0), 129.0).target == 4   # 4 is 29 s old: kept
    # the 4 at t=100 has left the window; the largest since is 3 (t=120)
    decision = policy.decide(Observation(4, 0.25, 0), 130.0)
    assert decision.target == 3
    assert "stabilised at 3" in decision.reason
    assert policy.decide(Observation(3, 0.25, 0), 150.0).target == 1   # t=120 gone too


def test_hpa_scales_up_at_once_whatever_the_window() -> None:
    policy = hpa(target_util=1.0, target_bytes=None, stabilization_s=300)
    policy.decide(Observation(4, 0.25, 0), 0.0)
    assert policy.decide(Observation(4, 2.0, 0), 1.0).target == 8


# -- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "message"), [
    ({"replicas_min": 0}, "1 <= replicas_min <= replicas_max"),
    ({"replicas_min": 5, "replicas_max": 4}, "1 <= replicas_min <= replicas_max"),
    ({"replicas_max": 2.5}, "replicas_max must be an integer"),
    ({"replicas_max": True}, "replicas_max must be an integer"),
    ({"util_max": "1"}, "util_max must be a number"),
    ({"util_min": 2.0}, "util_min <= util_max"),
    ({"bytes_min": -1}, "0 <= bytes_min <= bytes_max"),
    ({"bytes_max": float("nan")}, "must be finite"),
    ({"target_util": 1}, "unknown parameter(s) target_util; known: bytes_max, bytes_min"),
])
def test_seed_params_are_validated(params: dict[str, object], message: str) -> None:
    with pytest.raises(ParamError, match=None) as e:
        SeedParams.from_json(params)
    assert message in str(e.value)


@pytest.mark.parametrize(("params", "message"), [
    ({"target_util": None, "target_bytes": None}, "needs target_util or target_bytes"),
    ({"target_util": 0}, "must be > 0"),
    ({"tolerance": 1.0}, "0 <= tolerance < 1"),
    ({"stabilization_s": -1}, "stabilization_s must be >= 0"),
    ({"max_step_up": 0}, "max_step_up and max_step_down must be >= 1"),
    ({"target_bytes": "lots"}, "target_bytes must be a number or null"),
])
def test_hpa_params_are_validated(params: dict[str, object], message: str) -> None:
    with pytest.raises(ParamError) as e:
        HpaParams.from_json(params)
    assert message in str(e.value)


def test_params_accept_whole_floats_for_integers_and_ints_for_floats() -> None:
    p = HpaParams.from_json({"replicas_max": 6.0, "target_util": 2, "target_bytes": None})
    assert (p.replicas_max, p.target_util, p.target_bytes) == (6, 2.0, None)
    assert type(p.replicas_max) is int and type(p.target_util) is float


def test_make_policy_carries_bounds_to_another_policy_and_refuses_unknown_names() -> None:
    old = make_policy("seed", {"replicas_min": 2, "replicas_max": 5, "util_max": 3})
    new = make_policy("hpa", {"tolerance": 0.2}, old.params)
    assert isinstance(new, HpaPolicy)
    assert new.params == HpaParams(replicas_min=2, replicas_max=5, tolerance=0.2)
    same = make_policy("seed", {"util_min": 1}, old.params)
    assert same.params == SeedParams(replicas_min=2, replicas_max=5, util_min=1, util_max=3)
    with pytest.raises(ParamError, match="unknown policy 'k8s'; use one of seed, hpa"):
        make_policy("k8s", {})
