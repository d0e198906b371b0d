"""Plan a fleet of robots sharing one server: namespaces and collision-free robot ids (no ROS)."""
from dataclasses import dataclass

from triton_ros.sequences.ids import (MAX_ROBOT_ID, CorrelationIdError,
                                      assign_correlation_id, check_unique)


@dataclass(frozen=True)
class FleetRobot:
    namespace: str     # e.g. "robot1" (relative; pushed by the launch file)
    robot_id: int


def plan_fleet(robots: str, robot_id_base: int = 1, robot_ids: str = "",
               namespace_prefix: str = "robot") -> list[FleetRobot]:
    """Namespaces and robot ids of a fleet sharing one server, checked for collisions.

    ``robots``: a count (``"3"`` -> robot1, robot2, robot3) or comma-separated namespaces
    (``"alpha,bravo"``). ``robot_ids``: comma-separated ids, one per robot; empty = consecutive
    ids from ``robot_id_base``. Raises CorrelationIdError (a ValueError) for duplicate namespaces
    or ids, ids out of range, or a count/id-list mismatch.
    """
    robots = robots.strip()
    if robots.isdigit():
        count = int(robots)
        if count < 1:
            raise CorrelationIdError(f"robots={robots!r}: need at least one robot")
        names = [f"{namespace_prefix}{i}" for i in range(1, count + 1)]
    else:
        names = [n.strip().strip("/") for n in robots.split(",") if n.strip().strip("/")]
        if not names:
            raise CorrelationIdError(f"robots={robots!r}: give a count or namespaces")
    if len(set(names)) != len(names):
        raise CorrelationIdError(f"duplicate robot namespaces in {names}")
    if robot_ids.strip():
        try:
            ids = [int(v) for v in robot_ids.split(",") if v.strip()]
        except ValueError:
            raise CorrelationIdError(f"robot_ids={robot_ids!r}: expected integers "
                                     "separated by commas") from None
        if len(ids) != len(names):
            raise CorrelationIdError(f"{len(ids)} robot_ids for {len(names)} robots {names}")
    else:
        ids = [int(robot_id_base) + i for i in range(len(names))]
    bad = [i for i in ids if not 1 <= i <= MAX_ROBOT_ID]
    if bad:
        raise CorrelationIdError(f"robot ids {bad} are outside [1, {MAX_ROBOT_ID}]")
    fleet = [FleetRobot(name, robot_id) for name, robot_id in zip(names, ids)]
    # Same model, same stream index: the ids must differ (this also range-checks them).
    check_unique([assign_correlation_id(f"/{r.namespace}", "detections", robot_id=r.robot_id)
                  for r in fleet])
    return fleet
