"""Frames a publisher sent that never arrived, from the publishers' sequence numbers. No ROS.

The middleware numbers each publisher's messages
(``rmw_message_info_t.publication_sequence_number``, with the publisher's GID): a jump from n to
n + k + 1 between two messages taken from one publisher means k messages were sent in between and
never taken - lost on the way, or overwritten in the subscription's history (a KEEP_LAST queue
shallower than the reader's backlog), which DDS does not report as lost.

What this cannot see: messages before the first and after the last one taken from a publisher (a
publisher that stops, or a subscription that starts late), messages a publisher never sent (a
camera driver that skips frames), and anything from an RMW that does not fill the numbers (rclpy
then passes None).
"""


class PublisherGaps:
    """Per-publisher last sequence number; :meth:`observe` returns the frames skipped."""

    def __init__(self):
        self._last: dict[bytes, int] = {}
        self.supported = False   # True once a sequence number arrived (the RMW provides them)

    def observe(self, publisher: bytes, sequence: int | None) -> int:
        """Frames ``publisher`` sent between its previous message taken here and this one
        (``sequence``); 0 for the first one, for a repeated/older number (a restarted publisher
        keeps its GID only if it is the same writer) and when ``sequence`` is None."""
        if sequence is None:
            return 0
        self.supported = True
        last = self._last.get(publisher)
        if last is not None and sequence <= last:
            return 0
        self._last[publisher] = sequence
        return 0 if last is None else sequence - last - 1

    def forget(self, publisher: bytes) -> None:
        """Drop a publisher's state (e.g. when it is gone), so memory stays bounded."""
        self._last.pop(publisher, None)
