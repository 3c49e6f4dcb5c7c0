"""A small fault-injecting TCP proxy for the chaos test (no root needed).

Each node advertises the proxy's port instead of its Kafka listener, so every
Kafka-protocol connection to the node passes through it: clients, the other
nodes' follower fetches and the controller's liveness probes. `cut()` turns the
proxy into a black hole without closing anything (like a network partition:
bytes sent meanwhile stay in flight and new connections get no answer), `heal()`
delivers what was held back, or with `reset=True` drops every connection instead
(like a middlebox that forgot them). The metadata quorum (Raft) connects to the
controller listeners directly and is not affected: a cut isolates a node's Kafka
listener only (its own outgoing fetches to other leaders keep working).
"""

from __future__ import annotations

import select
import socket
import threading

HOST = "127.0.0.1"


class Proxy:
    def __init__(self, target_port: int, listen_port: int = 0):
        self.target_port = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, listen_port))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self._open = threading.Event()     # set = forwarding, clear = cut
        self._open.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self.accepted = 0
        threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}", daemon=True).start()

    # -- control -------------------------------------------------------------
    @property
    def is_cut(self) -> bool:
        return not self._open.is_set()

    def cut(self) -> None:
        self._open.clear()

    def heal(self, reset: bool = False) -> None:
        if reset:
            self._drop_all()
        self._open.set()

    def close(self) -> None:
        self._closed.set()
        self._open.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns), set()
        self._close_sockets(*conns)

    # -- forwarding ------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self._conns.add(client)
        upstream = None
        try:
            # A new connection during a cut gets no answer until the cut heals.
            while not self._open.wait(0.2):
                if self._closed.is_set():
                    raise OSError("proxy closed")
            upstream = socket.create_connection((HOST, self.target_port), timeout=3)
            upstream.settimeout(None)
            with self._lock:
                self._conns.add(upstream)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # node down, or the connection was reset meanwhile
            self._close_sockets(client, upstream)
            return
        t = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        t.start()
        self._pump(client, upstream)
        t.join(5)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                if not self._open.is_set():
                    self._open.wait(0.2)  # cut: read nothing, the sender's window fills up
                    continue
                r, _, _ = select.select([src], [], [], 0.2)
                if not r:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                # Bytes read just before a cut are held back until it heals.
                while not self._open.wait(0.2):
                    if self._closed.is_set():
                        return
                dst.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            self._close_sockets(src, dst)

    def _close_sockets(self, *socks: socket.socket | None) -> None:
        """Shuts down and closes each socket (None is skipped) and forgets it."""
        for s in socks:
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
            with self._lock:
                self._conns.discard(s)
