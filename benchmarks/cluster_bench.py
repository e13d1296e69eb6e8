#!/usr/bin/env python3
"""cluster_bench.py - issue 14's figures: topic fan-out and a work queue
across two Stampede nodes joined by a local nats-server (JetStream on),
measured in the same run as the same load on one node (and, for the queue,
on RabbitMQ's STOMP plugin).

    benchmarks/cluster_bench.py [--build build-bench] [--duration 5] [--rounds 2]

Each round runs, in this order: one node (publisher and subscribers on it);
two nodes (publisher on A, subscribers on B: every message crosses NATS).
Each node has --workers 1, so both set-ups have one worker per node. Loads:
fan-out (1 producer, 10 subscribers, as fast as the window allows) and latency
(1 producer at --rate msg/s, 10 subscribers); queue (1 producer, 4
consumers with client-individual acks and prefetch 100; across nodes each
message is stored in JetStream and leased by the other node). CPU per delivery is the
brokers' (and nats-server's) user+system time during the run, from
/proc/PID/stat, over the deliveries the subscribers counted. Prints a table
and writes benchmarks/results/cluster.json. Everything listens on 127.0.0.1
and every process is stopped at the end.
"""
import argparse, json, os, shutil, signal, socket, subprocess, sys, tempfile, time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")


def nats_server():
    """Debian installs nats-server in /usr/sbin, which a user's PATH may lack."""
    found = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(found, os.X_OK):
        raise SystemExit("cluster_bench: nats-server not found (scripts/dev.sh deps installs it)")
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_log(path, needle, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        with open(path, errors="replace") as f:
            if needle in f.read():
                return
        time.sleep(0.05)
    raise SystemExit(f"cluster_bench: '{needle}' not in {path}")


class Procs:
    def __init__(self, tmp):
        self.tmp, self.procs = tmp, []

    def start(self, name, argv, ready):
        log = os.path.join(self.tmp, name + ".log")
        p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        self.procs.append(p)
        wait_log(log, ready)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []


def node(procs, build, name, port, nats_url=None):
    argv = [os.path.join(build, "stampede"), "--workers", "1", "--listen",
            f"stomp://127.0.0.1:{port}"]
    if nats_url:
        argv += ["--cluster", nats_url, "--node-name", name]
    p = procs.start(name, argv, "listening on")
    if nats_url:
        wait_log(os.path.join(procs.tmp, name + ".log"), "cluster: connected to NATS")
    return p


def bench(build, url, sub_url, args, tmp):
    out = os.path.join(tmp, "bench.json")
    argv = [os.path.join(build, "benchmarks", "stampede-bench"), "--url", url,
            "--sub-url", sub_url, "--json", out] + args
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=120)
    with open(out) as f:
        return json.load(f)


def measure(build, load, pids, url, sub_url, tmp):
    before = {k: cpu_s(p) for k, p in pids.items()}
    t0 = time.time()
    r = bench(build, url, sub_url, load, tmp)
    wall = time.time() - t0
    cpu = {k: cpu_s(p) - before[k] for k, p in pids.items()}
    delivered = r["messages"]["received"]
    lat = r.get("latency_us") or {}
    return {
        "result": r["result"], "delivered_per_s": r["rates"]["delivered_per_s"],
        "delivered": delivered, "lost": r["messages"]["lost"],
        "p50_us": lat.get("p50"), "p99_us": lat.get("p99"), "wall_s": round(wall, 2),
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "broker_cpu_ns_per_delivery": round(
            sum(v for k, v in cpu.items() if k != "nats") * 1e9 / max(delivered, 1), 1),
        "nats_cpu_ns_per_delivery": round(cpu.get("nats", 0) * 1e9 / max(delivered, 1), 1),
    }


def rabbitmq_figure(build, load, tmp):
    """The same load on RabbitMQ's STOMP plugin (benchmarks/compare.py starts
    it on loopback ports of its own), or None when it is not installed."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import compare
    if not compare.RabbitMQ.available():
        print("cluster_bench: rabbitmq-server with its STOMP plugin is not installed: "
              "no RabbitMQ figure", flush=True)
        return None
    r = compare.RabbitMQ(list(range(os.cpu_count())), tmp, "stomp")
    try:
        r.start()
        return measure(build, load, {"rabbitmq": r.pid}, r.url(), r.url(), tmp)
    finally:
        r.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(TOP, "build-bench"))
    ap.add_argument("--duration", default="5")
    ap.add_argument("--rate", default="2000")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--loads", default="fanout,latency,queue",
                    help="comma-separated: fanout, latency, queue")
    ap.add_argument("--no-rabbitmq", action="store_true",
                    help="skip RabbitMQ's figure for the queue load")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    d = a.duration + "s"
    loads = {
        "fanout": ["--producers", "1", "--consumers", "10", "--topic", "--duration", d],
        "latency": ["--producers", "1", "--consumers", "10", "--topic", "--rate", a.rate,
                    "--duration", d],
        # A work queue: across nodes every message is stored in JetStream by
        # node A and leased by node B's consumers.
        "queue": ["--producers", "1", "--consumers", "4", "--queue", "--ack",
                  "client-individual", "--prefetch", "100", "--duration", d],
    }
    loads = {k: v for k, v in loads.items() if k in a.loads.split(",")}
    runs = []
    for rnd in range(a.rounds):
        for name, load in loads.items():
            with tempfile.TemporaryDirectory(prefix="stampede-cluster-bench.") as tmp:
                procs = Procs(tmp)
                try:
                    ps = free_port()
                    s = node(procs, build, "single", ps)
                    one = measure(build, load, {"single": s.pid}, f"stomp://127.0.0.1:{ps}",
                                  f"stomp://127.0.0.1:{ps}", tmp)
                    procs.stop_all()
                    np_ = free_port()
                    nats = procs.start("nats", [nats_server(), "-a", "127.0.0.1", "-p", str(np_),
                                                "-js", "-sd", os.path.join(tmp, "js")],
                                       "Server is ready")
                    url = f"nats://127.0.0.1:{np_}"
                    pa, pb = free_port(), free_port()
                    na = node(procs, build, "a", pa, url)
                    nb = node(procs, build, "b", pb, url)
                    two = measure(build, load, {"a": na.pid, "b": nb.pid, "nats": nats.pid},
                                  f"stomp://127.0.0.1:{pa}", f"stomp://127.0.0.1:{pb}", tmp)
                finally:
                    procs.stop_all()
                rabbit = None
                if name == "queue" and not a.no_rabbitmq:
                    rabbit = rabbitmq_figure(build, load, tmp)
            runs.append({"round": rnd, "load": name, "single": one, "cross_node": two,
                         "rabbitmq": rabbit})
            if rabbit:
                print(f"round {rnd} {name:8s} rabbitmq {rabbit['delivered_per_s']:>10.0f}/s "
                      f"p99 {rabbit['p99_us']} us cpu {rabbit['broker_cpu_ns_per_delivery']} ns",
                      flush=True)
            print(f"round {rnd} {name:8s} single {one['delivered_per_s']:>10.0f}/s "
                  f"p99 {one['p99_us']} us cpu {one['broker_cpu_ns_per_delivery']} ns | "
                  f"cross {two['delivered_per_s']:>10.0f}/s p99 {two['p99_us']} us "
                  f"brokers {two['broker_cpu_ns_per_delivery']} ns nats "
                  f"{two['nats_cpu_ns_per_delivery']} ns ({two['result']}, lost {two['lost']})",
                  flush=True)
    os.makedirs(os.path.join(TOP, "benchmarks", "results"), exist_ok=True)
    with open(os.path.join(TOP, "benchmarks", "results", "cluster.json"), "w") as f:
        json.dump({"runs": runs, "nproc": os.cpu_count()}, f, indent=1)


if __name__ == "__main__":
    main()
