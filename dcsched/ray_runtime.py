"""Starting Ray: a local instance on the loopback interface, or a cluster by address (ground floor)."""

from __future__ import annotations


def init_ray(address: str = "", num_cpus: int = 0) -> None:
    """Connect to a cluster at ``address``, or start a local instance on the loopback interface
    only, without dashboard or usage reporting (nothing leaves the machine)."""
    import os

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    init = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address:
        ray.init(address=address, **init)
        return
    # A single-node instance: Ray's own switch for loopback-only nodes (its default on macOS and
    # Windows), read at call time by ray._private.services.get_node_ip_address and by the
    # processes the instance spawns.
    from ray._private import ray_constants

    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    # Ray starts its workers at nice 15: any other process at normal priority (a test suite, an LP
    # solve) then takes the cores from the experiment's cells (measured: 8 % of a core each while
    # two nice-5 processes ran). The cells of a local instance run at the priority of the command,
    # as under the sequential launcher; RAY_worker_niceness set by the user wins.
    os.environ.setdefault(ray_constants.RAY_WORKER_NICENESS, "0")
    ray.init(num_cpus=num_cpus or None, **init)
