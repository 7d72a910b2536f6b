#!/usr/bin/env python3
"""Hostile-load soak and flood measurements for Petrel (not run in CI).

    python3 tests/soak/soak.py flood --server target/release/petrel [--seconds 10]
    python3 tests/soak/soak.py soak  --server target/release/petrel [--seconds 600]

`flood`: 4 connections publish 1 MiB messages with reply subjects into a file stream as
fast as the sockets take them for --seconds, then wait for the answers. Reports messages
sent, acked, refused (429) and failed, whether every publish was answered, and the server's
peak RSS (VmHWM) sampled from /proc.

`soak`: for --seconds runs, at once, the flood above plus: PING floods that never read,
CONNECTs with wrong bcrypt passwords, JetStream API request floods, pull requests with
huge batches and expiries, NAKs with huge delays and forged ack subjects, PubAcks aimed at
`$JS.API.STREAM.DELETE` by a client allowed to publish only its own subjects, and a
subscriber that never reads. Reports the peak RSS and checks at the end that the server
answers, that the work stream still exists, and that it holds every acked message.

Only the Python standard library is used. The server is started by the script on
127.0.0.1 with a fresh store directory, and stopped at the end.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1024 * 1024
ADMIN = ("admin", "admin-pw")
ORDERS = ("orders", "orders-pw")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Conn:
    """A raw NATS connection: CONNECT, then ops; a reader thread counts replies."""

    def __init__(self, port, user=None, password=None, read=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.settimeout(30)
        self.buf = b""
        self._read_line()  # INFO
        connect = {"verbose": False, "pedantic": False, "headers": True}
        if user:
            connect.update({"user": user, "pass": password})
        self.send(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        while self._read_line() != b"PONG":
            pass
        self.acks = 0
        self.refused = 0
        self.failed = 0
        self.msgs = 0
        self.lock = threading.Lock()
        self.closed = False
        if read:
            threading.Thread(target=self._reader, daemon=True).start()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reader(self):
        try:
            while True:
                line = self._read_line()
                if line.startswith(b"MSG "):
                    body = self._read_exact(int(line.split()[-1]))
                    self._count(None, body)
                elif line.startswith(b"HMSG "):
                    parts = line.split()
                    data = self._read_exact(int(parts[-1]))
                    hlen = int(parts[-2])
                    self._count(data[:hlen], data[hlen:])
                elif line == b"PING":
                    self.send(b"PONG\r\n")
        except (EOFError, OSError):
            self.closed = True

    def _count(self, headers, body):
        with self.lock:
            self.msgs += 1
            if headers and b" 429 " in headers:
                self.refused += 1
            elif body.startswith(b'{"error"'):
                self.failed += 1
            elif body.startswith(b'{"stream"'):
                self.acks += 1

    def request(self, subject, payload=b"", timeout=10):
        """A blocking request on a connection without a reader thread."""
        inbox = "_INBOX.soak.%d" % time.monotonic_ns()
        self.send(b"SUB %s 99\r\nPUB %s %s %d\r\n%s\r\n" % (
            inbox.encode(), subject.encode(), inbox.encode(), len(payload), payload))
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self._read_line()
            if line.startswith(b"MSG " + inbox.encode()):
                body = self._read_exact(int(line.split()[-1]))
                self.send(b"UNSUB 99\r\n")
                return json.loads(body)
            if line.startswith(b"HMSG "):
                self._read_exact(int(line.split()[-1]))
        raise TimeoutError(subject)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Rss:
    """Samples a process's resident set size every 100 ms."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def now(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def hwm(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return self.peak

    def _run(self):
        while not self.stop:
            self.peak = max(self.peak, self.now())
            time.sleep(0.1)


def write_config(path, store, port, http):
    # A bcrypt hash of "right" (cost 10), for the wrong-password flood.
    bcrypt_hash = "$2b$10$YgCJe0JYQn.7Sr413/MDXOwUoRbWEcHcFGXsDGipZCYhnaP9ntPcW"
    with open(path, "w") as f:
        f.write("""
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
max_payload: 1MB
jetstream { store_dir: "%s" }
authorization { users = [
  { user: admin, password: "admin-pw" }
  { user: svc, password: "%s" }
  { user: orders, password: "orders-pw",
    permissions: { publish: ["orders.>", "$JS.API.CONSUMER.MSG.NEXT.WORK.PULL"],
                   subscribe: ["_INBOX.>"] } }
] }
""" % (port, http, store, bcrypt_hash))


def launch(binary, workdir):
    port, http = free_port(), free_port()
    store = os.path.join(workdir, "store")
    conf = os.path.join(workdir, "soak.conf")
    write_config(conf, store, port, http)
    log = open(os.path.join(workdir, "server.log"), "w")
    proc = subprocess.Popen([binary, "-c", conf], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ))
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port, http
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("the server did not start; see %s" % log.name)


def api(port, subject, body):
    c = Conn(port, *ADMIN, read=False)
    try:
        return c.request(subject, json.dumps(body).encode() if body is not None else b"")
    finally:
        c.close()


def flood(port, seconds, conns=4, stop=None):
    """4 connections publish 1 MiB messages with replies as fast as the socket takes them."""
    payload = b"x" * MIB
    workers = []
    sent = [0] * conns

    def pump(i, c):
        frame = b"PUB flood.%d _INBOX.flood.%d %d\r\n%s\r\n" % (i, i, len(payload), payload)
        end = time.time() + seconds
        while time.time() < end and not (stop and stop.is_set()):
            try:
                c.send(frame)
            except OSError:
                return
            sent[i] += 1

    cs = []
    for i in range(conns):
        c = Conn(port, *ADMIN)
        c.send(b"SUB _INBOX.flood.%d 1\r\n" % i)
        cs.append(c)
        t = threading.Thread(target=pump, args=(i, c), daemon=True)
        t.start()
        workers.append(t)
    for t in workers:
        t.join()
    return cs, sent


def wait_answers(cs, sent, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(c.msgs >= n for c, n in zip(cs, sent)):
            return True
        time.sleep(0.1)
    return False


def cmd_flood(args):
    with tempfile.TemporaryDirectory() as work:
        proc, port, http = launch(args.server, work)
        try:
            api(port, "$JS.API.STREAM.CREATE.FLOOD",
                {"name": "FLOOD", "subjects": ["flood.>"], "storage": "file"})
            rss = Rss(proc.pid)
            base = rss.now()
            t0 = time.time()
            cs, sent = flood(port, args.seconds)
            answered = wait_answers(cs, sent)
            elapsed = time.time() - t0
            rss.stop = True
            acks = sum(c.acks for c in cs)
            refused = sum(c.refused for c in cs)
            failed = sum(c.failed for c in cs)
            info = api(port, "$JS.API.STREAM.INFO.FLOOD", None)
            alive = proc.poll() is None
            report = {
                "mode": "flood",
                "seconds": args.seconds,
                "connections": len(cs),
                "sent": sum(sent),
                "acked": acks,
                "refused_429": refused,
                "failed": failed,
                "every_publish_answered": answered and acks + refused + failed == sum(sent),
                "stored": info["state"]["messages"],
                "stored_equals_acked": info["state"]["messages"] == acks,
                "rss_start_mib": round(base / MIB, 1),
                "rss_peak_mib": round(max(rss.peak, rss.hwm()) / MIB, 1),
                "elapsed_s": round(elapsed, 1),
                "server_alive": alive,
            }
            print(json.dumps(report, indent=2))
            ok = report["every_publish_answered"] and alive and report["stored_equals_acked"]
            return 0 if ok else 1
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def hostile(port, stop, counters):
    """The hostile mix, each in its own loop until `stop`."""

    def loop(name, body):
        def run():
            while not stop.is_set():
                try:
                    body()
                    counters[name] = counters.get(name, 0) + 1
                except (OSError, EOFError, TimeoutError, ValueError):
                    counters[name + "_errors"] = counters.get(name + "_errors", 0) + 1
                    time.sleep(0.05)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def ping_flood():
        c = Conn(port, *ADMIN, read=False)
        try:
            c.send(b"PING\r\n" * 500_000)
        finally:
            c.close()

    def bad_bcrypt():
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.recv(4096)
        s.sendall(b'CONNECT {"user":"svc","pass":"wrong"}\r\nPING\r\n')
        s.recv(4096)
        s.close()

    def api_flood():
        c = Conn(port, *ADMIN)
        try:
            c.send(b"SUB _INBOX.api 1\r\n" + b"PUB $JS.API.STREAM.INFO.WORK _INBOX.api 0\r\n\r\n" * 2000)
            time.sleep(0.2)
        finally:
            c.close()

    def pull_abuse():
        c = Conn(port, *ORDERS)
        try:
            big = b'{"batch":9223372036854775807,"expires":9223372036854775807}'
            hb = b'{"batch":1,"idle_heartbeat":9223372036854775807,"expires":1000000000}'
            for body in (big, hb, b"-1", b"garbage"):
                c.send(b"PUB $JS.API.CONSUMER.MSG.NEXT.WORK.PULL _INBOX.pull %d\r\n%s\r\n"
                       % (len(body), body))
            time.sleep(0.2)
        finally:
            c.close()

    def bad_acks():
        c = Conn(port, *ADMIN)
        try:
            for body in (b"-NAK 10000000000000000000s", b'-NAK {"delay":9223372036854775807}',
                         b"+NXT " + b"x" * 1000, b"+TERM " + b"y" * 10000, b"+ACK"):
                for subj in (b"$JS.ACK.WORK.PULL.1.18446744073709551615.1.0.0",
                             b"$JS.ACK.WORK.PULL.1.1.18446744073709551615.0.0",
                             b"$JS.ACK.WORK.PULL.x.y.z.0.0"):
                    c.send(b"PUB %s _INBOX.ack %d\r\n%s\r\n" % (subj, len(body), body))
            time.sleep(0.1)
        finally:
            c.close()

    def trust_probe():
        c = Conn(port, *ORDERS, read=False)
        try:
            c.send(b"PUB orders.x $JS.API.STREAM.DELETE.WORK 2\r\nhi\r\n"
                   b"PUB orders.y $JS.API.STREAM.PURGE.WORK 2\r\nhi\r\nPING\r\n")
            while c._read_line() != b"PONG":
                pass
        finally:
            c.close()

    def never_reads():
        c = Conn(port, *ADMIN, read=False)
        try:
            c.send(b"SUB flood.> 1\r\nSUB orders.> 2\r\n")
            stop.wait(30)
        finally:
            c.close()

    return [
        loop("ping_flood", ping_flood),
        loop("bad_bcrypt", bad_bcrypt),
        loop("api_flood", api_flood),
        loop("pull_abuse", pull_abuse),
        loop("bad_acks", bad_acks),
        loop("trust_probe", trust_probe),
        loop("never_reads", never_reads),
    ]


def cmd_soak(args):
    with tempfile.TemporaryDirectory() as work:
        proc, port, http = launch(args.server, work)
        try:
            api(port, "$JS.API.STREAM.CREATE.FLOOD",
                {"name": "FLOOD", "subjects": ["flood.>"], "storage": "file",
                 "max_bytes": 512 * MIB})
            api(port, "$JS.API.STREAM.CREATE.WORK",
                {"name": "WORK", "subjects": ["orders.>"], "storage": "file"})
            api(port, "$JS.API.CONSUMER.CREATE.WORK.PULL",
                {"stream_name": "WORK", "config": {"durable_name": "PULL", "ack_policy": "explicit"}})
            rss = Rss(proc.pid)
            stop = threading.Event()
            counters = {}
            threads = hostile(port, stop, counters)
            t0 = time.time()
            rounds = 0
            totals = {"sent": 0, "acked": 0, "refused": 0, "failed": 0, "unanswered": 0}
            while time.time() - t0 < args.seconds:
                cs, sent = flood(port, min(10, args.seconds), stop=stop)
                wait_answers(cs, sent)
                totals["sent"] += sum(sent)
                totals["acked"] += sum(c.acks for c in cs)
                totals["refused"] += sum(c.refused for c in cs)
                totals["failed"] += sum(c.failed for c in cs)
                totals["unanswered"] += sum(max(0, n - c.msgs) for c, n in zip(cs, sent))
                for c in cs:
                    c.close()
                rounds += 1
                print("t=%4ds rss=%6.1f MiB peak=%6.1f MiB %s" % (
                    time.time() - t0, rss.now() / MIB, rss.peak / MIB, json.dumps(totals)),
                    flush=True)
            stop.set()
            for t in threads:
                t.join(timeout=40)
            rss.stop = True
            alive = proc.poll() is None
            work_info = api(port, "$JS.API.STREAM.INFO.WORK", None) if alive else {}
            report = {
                "mode": "soak",
                "seconds": args.seconds,
                "flood_rounds": rounds,
                "flood": totals,
                "hostile_loops": counters,
                "rss_peak_mib": round(max(rss.peak, rss.hwm()) / MIB, 1),
                "server_alive": alive,
                "work_stream_intact": "error" not in work_info,
            }
            print(json.dumps(report, indent=2))
            return 0 if alive and report["work_stream_intact"] else 1
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["flood", "soak"])
    p.add_argument("--server", default="target/release/petrel")
    p.add_argument("--seconds", type=int, default=None)
    args = p.parse_args()
    if args.seconds is None:
        args.seconds = 10 if args.mode == "flood" else 600
    return cmd_flood(args) if args.mode == "flood" else cmd_soak(args)


if __name__ == "__main__":
    sys.exit(main())
