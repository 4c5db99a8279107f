"""Shared shapes between the pipeline stages: transport connections and the sink they feed.

The reassembly layer knows nothing of HTTP or Kerberos; it hands in-order bytes and datagrams to a
`TransportSink`, which the decoding pipeline implements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True, eq=False)
class TcpConn:
    """One TCP connection as the reassembler sees it.

    `client` is the side that sent the SYN; when the capture starts mid-stream it is guessed
    (the side using the higher, non-well-known port). `stream` numbers connections in order of
    first appearance, like Wireshark's tcp.stream. `app` is free for the consumer's own state.
    """

    stream: int
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    first_frame: int
    saw_syn: bool = False
    app: Any = None
    data_frames: dict = field(default_factory=dict)
    #: Set by the consumer when it wants nothing more of this connection: the reassembler then forgets it
    #: and later packets cost one lookup (e.g. TLS once encryption starts). No on_tcp_close follows.
    detached: bool = False

    def describe(self) -> str:
        return f"{self.client_ip}:{self.client_port} -> {self.server_ip}:{self.server_port}"


class TransportSink(Protocol):
    """What the reassembly layer feeds; implemented by the decoding pipeline."""

    #: UDP ports whose datagrams are wanted (either source or destination port).
    udp_ports: frozenset[int]

    def wants_tcp(self, conn: TcpConn, payload: bytes, from_client: bool) -> bool:
        """Called with the first payload seen on a new connection; False ignores the connection."""

    def on_tcp_data(self, conn: TcpConn, from_client: bool, data: bytes, frame: int, time: float) -> None:
        """In-order bytes of one direction; `frame` is the frame whose segment delivered them."""

    def on_tcp_gap(self, conn: TcpConn, from_client: bool, missing: int, frame: int) -> None:
        """Bytes that were never captured (lost segment or capture started mid-stream)."""

    def on_tcp_close(self, conn: TcpConn, frame: int | None, time: float | None) -> None:
        """FIN/RST seen by both sides, eviction, or end of input; flush what is buffered."""

    def on_udp(
        self, src: str, sport: int, dst: str, dport: int, payload: bytes, frame: int, time: float
    ) -> None:
        """One (reassembled) UDP datagram; `frame` is the frame of its last IP fragment."""

    #: Server ports whose failed contacts are wanted (see on_connect_failed), e.g. the KDC's 88.
    watch_ports: frozenset[int]

    def on_connect_failed(self, client_ip: str, client_port: int, server_ip: str, server_port: int,
                          transport: str, how: str, frame: int, time: float) -> None:
        """A contact to a watched server port failed before any data: TCP reset or unanswered SYN, or
        an ICMP destination-unreachable error quoting the datagram/segment."""
