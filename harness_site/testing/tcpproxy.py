"""A TCP proxy that can be cut: the fault suite puts it between the workers and PostgreSQL to drop
the database connection for a few seconds, as a network blip or a database failover would.

While cut, every open connection is closed (both sides see a reset) and new ones are accepted and
closed at once, so the client sees "server closed the connection unexpectedly" rather than a
hang. Threads, not asyncio: the suite's scenario process is synchronous Django code.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class CuttableProxy:
    """127.0.0.1:<port> -> upstream; ``cut()`` drops everything until ``restore()``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.is_cut = False
        self.refused = 0  # connections closed at once while cut
        self.dropped = 0  # open connections closed by a cut
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> CuttableProxy:
        self.thread.start()
        return self

    def cut(self) -> None:
        with self.lock:
            self.is_cut = True
            victims, self.open = self.open, set()
        self.dropped += len(victims) // 2
        for sock in victims:
            _close(sock)

    def restore(self) -> None:
        with self.lock:
            self.is_cut = False

    def stop(self) -> None:
        self._stop = True
        self.cut()
        _close(self.listener)

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_cut:
                self.refused += 1
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self.lock:
                self.open.update((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):
            with self.lock:
                self.open.discard(sock)
            _close(sock)


def _close(sock: socket.socket) -> None:
    # shutdown first: close() alone leaves a blocked recv() in another thread waiting.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
