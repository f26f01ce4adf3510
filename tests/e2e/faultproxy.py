"""A fault-injecting TCP proxy for the end-to-end tests.

It sits between Kafka clients and the broker (the broker advertises the proxy's address, so
every connection a client opens goes through it) and, with a seeded random generator:

- drops connections at random moments,
- delays what the broker sends back,
- cuts a connection after forwarding a request but before its response reaches the client
  (the case that makes a producer retry a batch the broker already wrote).

Faults can be switched off and on while it runs; counters say what it did.
"""

import random
import selectors
import socket
import threading
import time


class FaultProxy:
    def __init__(self, target_port, seed=0, drop_prob=0.002, cut_after_request_prob=0.02,
                 max_delay_s=0.05, delay_prob=0.1):
        self.target = ("127.0.0.1", target_port)
        self.rng = random.Random(seed)
        self.drop_prob = drop_prob
        self.cut_after_request_prob = cut_after_request_prob
        self.max_delay_s = max_delay_s
        self.delay_prob = delay_prob
        self.faults = True
        self.stats = {"connections": 0, "dropped": 0, "cut_after_request": 0, "delayed": 0}
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _roll(self, p):
        with self.lock:
            return self.faults and self.rng.random() < p

    def _delay(self):
        with self.lock:
            if not self.faults or self.rng.random() >= self.delay_prob:
                return 0.0
            return self.rng.random() * self.max_delay_s

    def _accept_loop(self):
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self.stats["connections"] += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client, upstream):
        sel = selectors.DefaultSelector()
        client.setblocking(True)
        upstream.setblocking(True)
        sel.register(client, selectors.EVENT_READ, "c2s")
        sel.register(upstream, selectors.EVENT_READ, "s2c")
        cut_on_next_response = False
        try:
            while not self.stopped.is_set():
                for key, _ in sel.select(timeout=0.2):
                    src = key.fileobj
                    data = src.recv(65536)
                    if not data:
                        return
                    if self._roll(self.drop_prob):
                        self.stats["dropped"] += 1
                        return
                    if key.data == "c2s":
                        upstream.sendall(data)
                        if self._roll(self.cut_after_request_prob):
                            # The broker has the request; the client will not hear back.
                            cut_on_next_response = True
                    else:
                        if cut_on_next_response:
                            self.stats["cut_after_request"] += 1
                            return
                        d = self._delay()
                        if d:
                            self.stats["delayed"] += 1
                            time.sleep(d)
                        client.sendall(data)
        except OSError:
            pass
        finally:
            sel.close()
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        self.stopped.set()
        self.listener.close()


def proxied_broker(make_broker, seed, **faults):
    """A broker (from the `make_broker` fixture) that advertises a fault proxy in front of
    it: every client connection after the bootstrap one goes through the proxy."""
    b = make_broker(start=False)
    proxy = FaultProxy(b.port, seed=seed, **faults)
    b.extra_args += ["--advertised-listener", f"127.0.0.1:{proxy.port}"]
    b.start()
    return b, proxy
