#!/usr/bin/python3
"""compare.py - run stampede-bench's presets against Stampede and RabbitMQ.

Both brokers get the same generator, the same frames and the same CPU split:
the broker is pinned (taskset) to the first half of the CPUs this script may
use, the generator to the other half (on 2 cores: broker on one, generator on
the other). RabbitMQ gets as many Erlang schedulers as Stampede gets workers.

For the throughput presets (fanout, fanout-100, queue-pairs, work-queue and
durable) each broker is first driven as fast as possible, then an open-loop
rate sweep looks for the highest per-producer rate it sustains: nothing lost,
duplicated or reordered, at least 95% of the offered rate sent, and everything
delivered (and every receipt back) within 1 s of the end (no backlog growth). RabbitMQ collapses when offered more
than it sustains, so brokers are compared at their sustained rates. latency and
connections run once at their fixed rates.

durable (not in the default list: `--durable` or `--presets durable`) sends
persistent:true messages with a receipt per SEND to durable queues: RabbitMQ
keeps them in its normal on-disk store, and Stampede is started with
--data-dir on a fresh directory (removed afterwards) when its --help offers
the option, in memory otherwise. It is compared by persistent msg/s and
receipt latency.

Writes into --out (default benchmarks/results): runs/*.json (one per trial:
the generator's JSON plus the broker's CPU seconds and RSS from /proc),
summary.json, results.md (table with the Stampede/RabbitMQ ratio) and
chart.png (gnuplot, when installed).

Only the Python standard library; run with Debian's /usr/bin/python3.
"""
import argparse
import datetime
import glob
import json
import math
import os
import platform
import pwd
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
SWEEP_PRESETS = ["fanout", "fanout-100", "queue-pairs", "work-queue"]
DURABLE_PRESETS = ["durable"]  # swept too; Stampede runs them with --data-dir
FIXED_PRESETS = ["latency", "connections"]
SWEPT = SWEEP_PRESETS + DURABLE_PRESETS
QUEUE_PRESETS = ("queue-pairs", "work-queue", "connections", "durable")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile():
    """preexec_fn for the brokers: room for the connections preset (RabbitMQ
    stops accepting at about 830 connections under the default limit of 1024)."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        pass


def cpu_split():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return cpus, cpus
    half = (len(cpus) + 1) // 2
    return cpus[:half], cpus[half:]


def cpulist(cpus):
    return ",".join(str(c) for c in cpus)


def filesystem_of(path):
    """(mount point, type, device) of the filesystem that holds path."""
    path, best = os.path.realpath(path), ("/", "?", "?")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                mnt = mnt.replace("\\040", " ")
                inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best[0]):
                    best = (mnt, fstype, dev)
    except OSError:
        pass
    return best


def describe_fs(path):
    mnt, fstype, dev = filesystem_of(path)
    return f"{fstype} ({dev} on {mnt})"


def proc_cpu_seconds(pid):
    """utime + stime of a process and its reaped children, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / CLK_TCK
    except OSError:
        return None


def proc_rss_kb(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out.get("VmRSS"), out.get("VmHWM")


class Stampede:
    name = "stampede"
    label = "Stampede"

    def __init__(self, binary, cpus, workdir, transport, data_root=None):
        """data_root: start with --data-dir on a fresh directory under it (the
        durable presets), when this stampede has the option."""
        self.binary, self.cpus, self.workdir = binary, cpus, workdir
        self.transport = transport
        self.proc = None
        self.port = None
        self.data_root = data_root
        self.data_dir = None

    @staticmethod
    def supports_data_dir(binary):
        """Whether this build has --data-dir (issue 12): its --help says so."""
        try:
            r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return "--data-dir" in r.stdout + r.stderr

    def storage(self):
        """How this instance keeps persistent messages, for the report."""
        if self.data_root is None:
            return "in memory"
        if not self.supports_data_dir(self.binary):
            return "in memory (this stampede has no --data-dir: persistent:true is ignored)"
        return f"--data-dir on {describe_fs(self.data_root)}"

    def url(self):
        if self.transport == "ws":
            return f"ws://127.0.0.1:{self.port}/ws"
        return f"stomp://127.0.0.1:{self.port}"

    def start(self):
        logf = open(os.path.join(self.workdir, "stampede.log"), "w+")
        listen = "ws://127.0.0.1:0/ws" if self.transport == "ws" else "stomp://127.0.0.1:0"
        cmd = ["taskset", "-c", cpulist(self.cpus), self.binary, "--listen", listen,
               "--workers", str(len(self.cpus))]
        if self.data_root is not None and self.supports_data_dir(self.binary):
            self.data_dir = tempfile.mkdtemp(prefix="stampede-data-", dir=self.data_root)
            cmd += ["--data-dir", self.data_dir]
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile)
        deadline = time.time() + 15
        while time.time() < deadline:
            logf.seek(0)
            m = re.search(r"listening on (?:stomp|ws)://127\.0\.0\.1:(\d+)", logf.read())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("stampede did not start (see stampede.log)")

    def cleanup(self):
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    @property
    def pid(self):
        return self.proc.pid  # taskset execs the broker: same pid

    def between_trials(self, preset, rec):
        """The durable instance: a trial that left messages behind (it did not
        drain) is followed by a fresh broker (on a fresh --data-dir), as
        RabbitMQ deletes its queues: a backlog of persistent messages would
        otherwise weigh on the next trials (and on the journal)."""
        bench = rec.get("bench") or {}
        if self.data_root is None or (bench.get("drain") or {}).get("drained"):
            return
        log("stampede: restarting after a trial that left a backlog"
            f"{' (fresh --data-dir)' if self.data_dir else ''}")
        self.stop()
        try:
            self.start()
        except RuntimeError as e:  # the next trials fail to connect and say so
            log(str(e))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.cleanup()


class RabbitMQ:
    name = "rabbitmq"
    label = "RabbitMQ"

    def __init__(self, cpus, workdir, transport, data_root=None):
        self.cpus, self.workdir = cpus, workdir
        self.transport = transport
        self.proc = None
        self.port = free_port()
        self.node = f"stampedebench{os.getpid()}@localhost"
        # config, logs and the message store (mnesia/): on the same filesystem
        # as Stampede's --data-dir for the durable presets
        self.dir = tempfile.mkdtemp(prefix="stampede-rabbitmq-", dir=data_root)
        self.epmd_before = self.epmd_pids()
        self.beam = None
        self.ports = {"amqp": free_port(), "dist": free_port(), "ws": free_port()}

    def url(self):
        if self.transport == "ws":
            return f"ws://127.0.0.1:{self.ports['ws']}/ws"
        return f"stomp://127.0.0.1:{self.port}"

    @staticmethod
    def available():
        return (shutil.which("rabbitmq-server") and shutil.which("rabbitmqctl") and
                glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_stomp*"))

    @staticmethod
    def epmd_pids():
        pids = set()
        for d in glob.glob("/proc/[0-9]*"):
            try:
                with open(d + "/comm") as f:
                    if f.read().strip() == "epmd":
                        pids.add(int(d.split("/")[-1]))
            except OSError:
                pass
        return pids

    def env(self):
        e = dict(os.environ)
        e.update({
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.ports["amqp"]),
            "RABBITMQ_DIST_PORT": str(self.ports["dist"]),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"+S {len(self.cpus)}:{len(self.cpus)}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        })
        return e

    def configure(self):
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"stomp.listeners.tcp.1 = 127.0.0.1:{self.port}\n"
                    f"web_stomp.tcp.ip = 127.0.0.1\n"
                    f"web_stomp.tcp.port = {self.ports['ws']}\n"
                    "disk_free_limit.absolute = 50MB\n"
                    "log.file.level = warning\n")
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_stomp,rabbitmq_web_stomp].\n")
        rmq = pwd.getpwnam("rabbitmq")
        for root, dirs, files in os.walk(self.dir):
            for p in [root] + [os.path.join(root, x) for x in files]:
                os.chown(p, rmq.pw_uid, rmq.pw_gid)

    def ctl(self, *args, timeout=60):
        return subprocess.run(["rabbitmqctl", "-n", self.node, *args], env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def start(self):
        self.configure()
        logf = open(os.path.join(self.workdir, "rabbitmq.log"), "w")
        # Run the server script as the rabbitmq user ourselves: Debian's wrapper
        # goes through su, whose PAM session puts the open-files limit back to 1024.
        rmq = pwd.getpwnam("rabbitmq")

        def as_rabbitmq():
            raise_nofile()
            os.setgroups([])
            os.setgid(rmq.pw_gid)
            os.setuid(rmq.pw_uid)

        env = self.env()
        env.update({"HOME": rmq.pw_dir, "USER": "rabbitmq", "LOGNAME": "rabbitmq"})
        server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        if not os.access(server, os.X_OK):
            server = "rabbitmq-server"
        self.proc = subprocess.Popen(["taskset", "-c", cpulist(self.cpus), server], env=env,
                                     cwd=rmq.pw_dir, stdout=logf, stderr=subprocess.STDOUT,
                                     preexec_fn=as_rabbitmq)
        deadline = time.time() + 90
        while True:  # await_startup fails at once until the VM has registered with epmd
            r = self.ctl("await_startup", "--timeout", "60", timeout=90)
            if r.returncode == 0 or time.time() > deadline or self.proc.poll() is not None:
                break
            time.sleep(1)
        if r.returncode != 0:
            self.stop()
            raise RuntimeError("rabbitmq did not start: " + (r.stderr or r.stdout)[-500:])
        r = self.ctl("eval", "os:getpid().")
        self.beam = int(r.stdout.strip().strip('"'))

    @property
    def pid(self):
        return self.beam

    def storage(self):
        return f"its message store on {describe_fs(self.dir)}"

    def between_trials(self, preset, rec):
        """Delete the trial's queues: a collapsed trial leaves messages behind."""
        if preset in QUEUE_PRESETS:
            r = self.ctl("eval", "[rabbit_amqqueue:delete(Q, false, false, <<\"compare\">>) "
                                 "|| Q <- rabbit_amqqueue:list()], ok.")
            if r.returncode != 0:
                log("rabbitmq: could not delete the trial's queues: " + r.stderr.strip()[-200:])

    def stop(self):
        if self.proc:
            self.ctl("stop", timeout=60)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.epmd_pids() - self.epmd_before:  # the epmd this node started
            try:
                os.kill(pid, 15)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Runner:
    def __init__(self, args, gen_cpus):
        self.args, self.gen_cpus = args, gen_cpus
        self.trial = 0
        self.runs_dir = os.path.join(args.out, "runs")

    @staticmethod
    def wait_idle(broker, limit=8.0):
        """Let the broker finish the previous trial's work (below 15% of a core)."""
        end = time.time() + limit
        while time.time() < end:
            c0 = proc_cpu_seconds(broker.pid)
            time.sleep(0.3)
            c1 = proc_cpu_seconds(broker.pid)
            if c0 is None or c1 is None or (c1 - c0) / 0.3 < 0.15:
                return

    def run(self, broker, preset, rate):
        """One generator run; returns the trial record."""
        a = self.args
        self.wait_idle(broker)
        self.trial += 1
        tag = f"{broker.name}-{preset}-{'max' if rate == 0 else rate}"
        out = os.path.join(self.runs_dir, tag + ".json")
        cmd = ["taskset", "-c", cpulist(self.gen_cpus), a.bench,
               "--url", broker.url(), "--preset", preset,
               "--duration", str(a.duration), "--warmup", str(a.warmup), "--drain", str(a.drain),
               "--threads", str(len(self.gen_cpus)), "--login", "guest", "--passcode", "guest",
               "--dest-prefix", f"t{self.trial}", "--json", out, "--quiet",
               "--connect-timeout", "60"]  # RabbitMQ takes its time to accept 1,000 connections
        if rate:
            cmd += ["--rate", str(rate)]
        if os.path.exists(out):
            os.unlink(out)
        cpu0, t0 = proc_cpu_seconds(broker.pid), time.time()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=a.duration + a.warmup + a.drain + 90)
            rc, err = p.returncode, p.stderr.strip().splitlines()[-1:] or [""]
        except subprocess.TimeoutExpired:
            rc, err = -1, ["generator timed out"]
        wall, cpu1 = time.time() - t0, proc_cpu_seconds(broker.pid)
        rss, hwm = proc_rss_kb(broker.pid)
        bench = None
        if os.path.exists(out):
            with open(out) as f:
                bench = json.load(f)
        rec = {
            "broker": broker.name, "preset": preset, "rate_per_producer": rate,
            "exit_status": rc, "error": err[0] if rc not in (0, 3) else None,
            "broker_cpu_s": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2),
            "broker_cpu_util": None if cpu0 is None or cpu1 is None else
            round((cpu1 - cpu0) / wall, 3),
            "broker_rss_kb": rss, "broker_peak_rss_kb": hwm, "wall_s": round(wall, 2),
            "sustained": bool(bench and bench["sustained"]),
            "delivered_per_s": bench["rates"]["delivered_per_s"] if bench else 0,
            "sent_per_s": bench["rates"]["sent_per_s"] if bench else 0,
            "latency_us": bench["latency_us"] if bench else None,
            "receipt_latency_us": bench.get("receipt_latency_us") if bench else None,
            "receipts": bench.get("receipts") if bench else None,
            "receipts_expected": bench.get("receipts_expected") if bench else None,
            "bench": bench,
        }
        with open(out, "w") as f:
            json.dump(rec, f, indent=1)
        broker.between_trials(preset, rec)
        lat, rlat = rec["latency_us"], rec["receipt_latency_us"]
        p99 = f"{lat['p99']:>9.0f} us" if lat else "        - us"
        rp99 = f" receipt p99 {rlat['p99']:>9.0f} us" if rlat else ""
        log(f"{broker.label:8} {preset:11} rate {rate or 'max':>8}: delivered "
            f"{rec['delivered_per_s']:>10.0f}/s p99 {p99}{rp99} "
            f"{'sustained' if rec['sustained'] else 'NOT sustained'}"
            f"{' (' + rec['error'] + ')' if rec['error'] else ''}")
        return rec

    def sweep(self, broker, preset, deadline):
        """Rate 0, then an open-loop sweep for the highest sustained rate."""
        trials = [self.run(broker, preset, 0)]
        first = trials[0]
        bench = first["bench"] or {}
        producers = bench.get("config", {}).get("producers", 1) or 1
        fanout = bench.get("rates", {}).get("fanout") or 1
        # start just below what the closed-loop (windowed) run delivered
        start = first["delivered_per_s"] / fanout / producers * 0.9
        rate, good, bad = max(int(start), 100) if start else 1000, None, None
        for _ in range(self.args.steps):
            if time.time() > deadline:
                log(f"time budget reached: {broker.label} {preset} sweep cut short")
                break
            rec = self.run(broker, preset, rate)
            trials.append(rec)
            if rec["sustained"]:
                good = rate if good is None else max(good, rate)
            else:
                bad = rate if bad is None else min(bad, rate)
            if good is not None and bad is not None:
                if bad <= good * 1.1:
                    break
                rate = int(math.sqrt(good * bad))
            elif good is not None:
                rate = int(rate * 1.5)
            else:
                rate = max(int(rate * 0.6), 10)
        return trials


def best_of(trials):
    ok = [t for t in trials if t["sustained"] and t["rate_per_producer"] > 0]
    return max(ok, key=lambda t: t["delivered_per_s"]) if ok else None


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "host": platform.node()}


def fmt_rate(v):
    return "-" if v is None else f"{v:,.0f}"


def mark(t):
    return " (not sustained)" if t and not t["sustained"] else ""


def fmt_lat(t, key="latency_us", pct="p99"):
    if not t or not t.get(key):
        return "-"
    return f"{t[key][pct] / 1000:.2f} ms"


def fmt_ratio(a, b):
    return f"{a / b:.1f}x" if a and b else "-"


def fmt_res(t):
    if not t or t.get("broker_cpu_util") is None:
        return "-"
    rss = (t.get("broker_rss_kb") or 0) / 1024
    return f"{t['broker_cpu_util'] * 100:.0f}% / {rss:.0f} MB"


def write_markdown(path, summary):
    s = summary
    lines = [
        f"# Stampede vs RabbitMQ ({'quick' if s['quick'] else 'full'} run)", "",
        f"- date: {s['date']}",
        f"- machine: {s['machine']['cpu']}, {s['machine']['cpus']} CPUs, Linux "
        f"{s['machine']['kernel']}",
        f"- CPU split: broker on CPU {s['broker_cpus']}, generator on CPU {s['generator_cpus']} "
        "(taskset); RabbitMQ gets as many Erlang schedulers as Stampede gets workers",
        f"- RabbitMQ: {s.get('rabbitmq_version') or 'not installed'}",
        f"- load average (1, 5, 15 min) at start {s['loadavg_start']}, at end "
        f"{s['loadavg_end']}: other work on the machine shares the CPUs; above about 0.5 the "
        "numbers are low for both brokers",
        f"- elapsed: {s['elapsed_s']} s",
        f"- trials: {s['duration_s']} s measured after {s['warmup_s']} s warm-up; drain limit "
        f"{s['drain_s']} s; STOMP over {'WebSocket' if s['transport'] == 'ws' else 'TCP'}",
        "- rerun: `benchmarks/compare.sh` (add `--quick` for a short run, `--durable` for the "
        "durable queues alone)", "",
    ]
    if any(p not in DURABLE_PRESETS for p in s["presets"]):
        lines += throughput_markdown(s)
    lines += durable_markdown(s)
    if s.get("notes"):
        lines += ["Notes:", ""] + [f"- {n}" for n in s["notes"]] + [""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def throughput_markdown(s):
    lines = [
        "Throughput is the highest **sustained** delivery rate of an open-loop rate sweep: "
        "nothing lost, duplicated or reordered, at least 95% of the offered rate sent, and "
        "everything delivered within 1 s of the end. `max` is the delivery rate when producers "
        "send as fast as they can. p99 is the latency at the sustained rate, from each "
        "message's intended send time (coordinated omission corrected). CPU is the broker's "
        "share of one core over the trial, RSS its resident memory at the end. `latency` and "
        "`connections` run once at a fixed offered rate (5,000 and 10,000 msg/s): compare "
        "their latency, CPU and memory; \"not sustained\" means the broker fell behind it.", "",
        "| preset | Stampede deliveries/s | RabbitMQ deliveries/s | ratio | Stampede max | "
        "RabbitMQ max | Stampede p99 | RabbitMQ p99 | Stampede CPU / RSS | RabbitMQ CPU / RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for preset, row in s["presets"].items():
        if preset in DURABLE_PRESETS:
            continue
        st, rq = row.get("stampede") or {}, row.get("rabbitmq") or {}
        sb, rb = st.get("best"), rq.get("best")
        sv = sb["delivered_per_s"] if sb else None
        rv = rb["delivered_per_s"] if rb else None
        ratio = f"{sv / rv:.1f}x" if sv and rv else "-"
        if preset in FIXED_PRESETS:  # the same offered rate: the ratio says nothing
            ratio = "-"
        lines.append(
            f"| {preset} | {fmt_rate(sv)}{mark(sb)} | {fmt_rate(rv)}{mark(rb)} | {ratio} | "
            f"{fmt_rate(st.get('max'))} | {fmt_rate(rq.get('max'))} | {fmt_lat(sb)} | "
            f"{fmt_lat(rb)} | {fmt_res(sb)} | {fmt_res(rb)} |")
    if any(p in SWEEP_PRESETS for p in s["presets"]):
        lines += ["", "![sustained deliveries per second](chart.png)", ""]
    return lines


def durable_rows(summary):
    """(preset, Stampede best, RabbitMQ best, Stampede row, RabbitMQ row) of the durable presets."""
    for preset, row in summary["presets"].items():
        if preset in DURABLE_PRESETS:
            st, rq = row.get("stampede") or {}, row.get("rabbitmq") or {}
            yield preset, st.get("best"), rq.get("best"), st, rq


def durable_markdown(s):
    rows = list(durable_rows(s))
    if not rows:
        return []
    lines = [
        "", "## Durable queues", "",
        "10 producers -> 10 queues -> 10 consumers, 100-byte `persistent:true` messages, a "
        "RECEIPT asked for every SEND, client-individual acks, prefetch 100 "
        "(`--preset durable`). msg/s is the highest sustained rate of the sweep (as above, and "
        "every receipt back within 1 s of the end); receipt latency is from each SEND's "
        "intended time to its RECEIPT, at that rate.", "",
        f"- Stampede: {s.get('stampede_storage', '?')}",
        f"- RabbitMQ: {s.get('rabbitmq_storage') or 'not run'} (durable classic queues: "
        "`/queue/` destinations are declared durable by default)", "",
        "| preset | Stampede msg/s | RabbitMQ msg/s | ratio | Stampede max | RabbitMQ max | "
        "Stampede receipt p50 / p99 | RabbitMQ receipt p50 / p99 | Stampede CPU / RSS | "
        "RabbitMQ CPU / RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for preset, sb, rb, st, rq in rows:
        sv = sb["delivered_per_s"] if sb else None
        rv = rb["delivered_per_s"] if rb else None
        lines.append(
            f"| {preset} | {fmt_rate(sv)} | {fmt_rate(rv)} | {fmt_ratio(sv, rv)} | "
            f"{fmt_rate(st.get('max'))} | {fmt_rate(rq.get('max'))} | "
            f"{fmt_lat(sb, 'receipt_latency_us', 'p50')} / {fmt_lat(sb, 'receipt_latency_us')} | "
            f"{fmt_lat(rb, 'receipt_latency_us', 'p50')} / {fmt_lat(rb, 'receipt_latency_us')} | "
            f"{fmt_res(sb)} | {fmt_res(rb)} |")
    return lines + [""]


def durable_lines(summary):
    """One line per durable preset for the terminal: msg/s, p99 receipt latency, ratio."""
    out = []
    for preset, sb, rb, _, _ in durable_rows(summary):
        sv = sb["delivered_per_s"] if sb else None
        rv = rb["delivered_per_s"] if rb else None
        out.append(f"{preset}: Stampede {fmt_rate(sv)} msg/s, p99 receipt "
                   f"{fmt_lat(sb, 'receipt_latency_us')} ({summary.get('stampede_storage')}); "
                   f"RabbitMQ {fmt_rate(rv)} msg/s, p99 receipt "
                   f"{fmt_lat(rb, 'receipt_latency_us')}; ratio {fmt_ratio(sv, rv)}")
    return out


def write_chart(out_dir, summary):
    if not shutil.which("gnuplot"):
        summary["notes"].append("gnuplot is not installed: no chart.png")
        return
    if not any(p in SWEEP_PRESETS for p in summary["presets"]):
        return
    dat = os.path.join(out_dir, "chart.dat")
    with open(dat, "w") as f:
        f.write("# preset stampede rabbitmq\n")
        for preset, row in summary["presets"].items():
            if preset not in SWEEP_PRESETS:
                continue
            vals = []
            for b in ("stampede", "rabbitmq"):
                best = (row.get(b) or {}).get("best")
                vals.append(str(best["delivered_per_s"]) if best else "NaN")
            f.write(f"{preset} {' '.join(vals)}\n")
    script = f"""
set terminal pngcairo size 900,500 noenhanced
set output '{os.path.join(out_dir, "chart.png")}'
set title 'Sustained deliveries/s, same machine, same generator ({summary["date"]})'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set yrange [100:*]
set ylabel 'deliveries/s (log scale)'
set key top right
set grid ytics
plot '{dat}' using 2:xtic(1) title 'Stampede' lc rgb '#d95f02', '' using 3 title 'RabbitMQ' lc rgb '#7570b3'
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        summary["notes"].append("gnuplot failed: " + r.stderr.strip()[-200:])


def run_broker(broker, runner, presets, deadline, summary):
    try:
        broker.start()
    except RuntimeError as e:
        summary["notes"].append(f"{broker.label}: {e}")
        log(str(e))
        return
    try:
        for preset in presets:
            row = summary["presets"].setdefault(preset, {})
            if preset in SWEPT:
                trials = runner.sweep(broker, preset, deadline)
            else:
                trials = [runner.run(broker, preset, 0)]
            # fixed-rate presets report their one run, kept up with or not
            best = best_of(trials) if preset in SWEPT else trials[0]
            row[broker.name] = {
                "max": trials[0]["delivered_per_s"] if preset in SWEPT else None,
                "best": {k: v for k, v in best.items() if k != "bench"} if best else None,
                "trials": [{k: v for k, v in t.items() if k != "bench"} for t in trials],
            }
    finally:
        broker.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run (< 3 minutes)")
    ap.add_argument("--presets", help="comma-separated presets (default: all but durable; "
                                      "quick: fanout,queue-pairs,latency)")
    ap.add_argument("--durable", action="store_true",
                    help="only the durable preset (persistent messages, a receipt per SEND): "
                         "Stampede with --data-dir, RabbitMQ's on-disk store; results in "
                         "benchmarks/results/durable unless --out")
    ap.add_argument("--data-root", default=tempfile.gettempdir(),
                    help="where the durable presets' data directories go: Stampede's "
                         "--data-dir and RabbitMQ's node directory, so both write to the "
                         "same disk; the rabbitmq user must be able to reach it "
                         "(default: %(default)s)")
    ap.add_argument("--build", default=os.path.join(TOP, "build"), help="meson build directory")
    ap.add_argument("--out", help="results directory (default benchmarks/results, "
                                  "benchmarks/results/ws with --transport ws, "
                                  "benchmarks/results/durable with --durable)")
    ap.add_argument("--no-rabbitmq", action="store_true", help="only run Stampede")
    ap.add_argument("--transport", choices=["stomp", "ws"], default="stomp",
                    help="STOMP over TCP (default) or over WebSocket (Web-STOMP for RabbitMQ)")
    ap.add_argument("--budget", type=float, help="seconds allowed (default 840, quick 170)")
    args = ap.parse_args()
    if args.durable:
        if args.presets and args.presets != "durable":
            ap.error("--durable runs only the durable preset: drop --presets")
        args.presets = "durable"
    durable_only = bool(args.presets) and all(p in DURABLE_PRESETS
                                              for p in args.presets.split(","))
    if not args.out:
        args.out = os.path.join(HERE, "results", "ws" if args.transport == "ws" else "",
                                "durable" if durable_only else "")
    args.duration, args.warmup, args.drain = (2, 0.5, 2) if args.quick else (4, 1, 3)
    args.steps = 4 if args.quick else 6
    budget = args.budget or (170 if args.quick else 840)
    presets = (args.presets.split(",") if args.presets else
               ["fanout", "queue-pairs", "latency"] if args.quick else SWEEP_PRESETS + FIXED_PRESETS)
    for p in presets:
        if p not in SWEPT + FIXED_PRESETS:
            ap.error(f"unknown preset {p}")
    if not os.path.isdir(args.data_root):
        ap.error(f"--data-root {args.data_root} is not a directory")
    args.bench = os.path.join(args.build, "benchmarks", "stampede-bench")
    broker_bin = os.path.join(args.build, "stampede")
    for b in (args.bench, broker_bin):
        if not os.access(b, os.X_OK):
            ap.error(f"{b} is missing: build first (meson compile -C {args.build})")
    broker_cpus, gen_cpus = cpu_split()
    os.makedirs(os.path.join(args.out, "runs"), exist_ok=True)
    for old in glob.glob(os.path.join(args.out, "runs", "*.json")):
        os.unlink(old)
    workdir = tempfile.mkdtemp(prefix="stampede-compare-")
    t0 = time.time()
    summary = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick, "machine": machine(), "broker_cpus": cpulist(broker_cpus),
        "generator_cpus": cpulist(gen_cpus), "duration_s": args.duration,
        "warmup_s": args.warmup, "drain_s": args.drain,         "transport": args.transport, "loadavg_start": loadavg(),
        "presets": {}, "notes": [],
    }
    if len(broker_cpus) == 1 and broker_cpus == gen_cpus:
        summary["notes"].append("one CPU: broker and generator share it")
    runner = Runner(args, gen_cpus)
    with_rmq = not args.no_rabbitmq and RabbitMQ.available()
    share = 0.45 if with_rmq else 0.95
    log(f"broker CPUs {cpulist(broker_cpus)}, generator CPUs {cpulist(gen_cpus)}; "
        f"presets {','.join(presets)}")
    in_memory = [p for p in presets if p not in DURABLE_PRESETS]
    durable = [p for p in presets if p in DURABLE_PRESETS]
    if in_memory:
        run_broker(Stampede(broker_bin, broker_cpus, workdir, args.transport), runner, in_memory,
                   t0 + budget * share, summary)
    if durable:  # its own instance, on a fresh --data-dir (removed when it stops)
        st = Stampede(broker_bin, broker_cpus, workdir, args.transport, data_root=args.data_root)
        summary["stampede_storage"] = st.storage()
        log(f"durable presets: Stampede {summary['stampede_storage']}")
        if st.storage().startswith("in memory"):
            summary["notes"].append(
                "Stampede's durable figures are the in-memory baseline: this build has no "
                "--data-dir, so it keeps persistent:true messages in memory")
        run_broker(st, runner, durable, t0 + budget * share, summary)
    if with_rmq:
        v = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"],
                           capture_output=True, text=True).stdout
        summary["rabbitmq_version"] = f"rabbitmq-server {v} (Debian) with rabbitmq_stomp"
        rmq = RabbitMQ(broker_cpus, workdir, args.transport,
                       data_root=args.data_root if durable else None)
        if durable:
            summary["rabbitmq_storage"] = rmq.storage()
        run_broker(rmq, runner, presets, t0 + budget, summary)
    elif not args.no_rabbitmq:
        summary["notes"].append("RabbitMQ is not installed: Stampede only")
    summary["elapsed_s"] = round(time.time() - t0, 1)
    summary["loadavg_end"] = loadavg()
    write_chart(args.out, summary)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    write_markdown(os.path.join(args.out, "results.md"), summary)
    shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {summary['elapsed_s']} s: {os.path.join(args.out, 'results.md')}")
    print(open(os.path.join(args.out, "results.md")).read())
    for line in durable_lines(summary):
        print(line)


if __name__ == "__main__":
    main()
