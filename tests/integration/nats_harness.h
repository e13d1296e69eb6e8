/*
 * nats_harness.h - a real NATS server (Debian's nats-server 2.9) for the
 * cluster suites (issue 14), and Stampede nodes that join it.
 *
 * Owns: one nats-server process per struct h_nats, listening on 127.0.0.1
 * only, on a port it picks itself on the first start (-p -1, read back from
 * its log) and keeps across restarts; a fresh temporary directory per server
 * holding its log file (nats.log, appended by every start) and, with
 * JetStream, its store (store/, kept across restarts). The binary is
 * $ITEST_NATS_SERVER when set, else /usr/sbin/nats-server; when it is missing
 * the test FAILS and says to run scripts/dev.sh deps (never skips).
 *
 * Thread contract: as harness.h (single-threaded, one criterion test
 * process). Every wait is bounded. Servers are remembered in a registry: h_fini
 * (through h_at_fini) SIGKILLs the ones still running, reaps them and removes
 * their temporary directories (kept with ITEST_KEEP_LOGS set), also when the
 * test failed. Strings returned are registry-owned (freed by h_fini).
 */
#ifndef STAMPEDE_ITEST_NATS_HARNESS_H
#define STAMPEDE_ITEST_NATS_HARNESS_H

#include "harness.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* How long a start (or restart) may take before the test fails, in ms. */
#define H_NATS_START_MS 10000

struct h_nats {
    pid_t pid;        /* of the current run; 0 when not running */
    bool running;     /* started and not yet seen to exit */
    bool jetstream;   /* -js -sd <dir>/store */
    int port;         /* fixed after the first start */
    int status;       /* waitpid status of the last run that ended */
    unsigned starts;  /* runs so far (1 after h_nats_start) */
    size_t log_start; /* offset in the log file where the current run's lines begin */
    char dir[128];    /* the temporary directory (removed by h_fini) */
    char log_path[160];
    char store_dir[160];
    char url[64]; /* "nats://127.0.0.1:PORT" */
    /* h_nats_start_ex: more nats-server arguments for every run (the
     * caller's NULL-terminated array, which must outlive the server). */
    const char *const *extra;
};

/* Start nats-server on 127.0.0.1 with a port of its choice; with `jetstream`,
 * JetStream on with its store in a fresh directory. Returns once the log says
 * "Server is ready" and a TCP client gets the server's INFO line (at most
 * H_NATS_START_MS); asserts, with the log in the message, otherwise. */
struct h_nats *h_nats_start(bool jetstream);
/* The same with more nats-server arguments (e.g. "--user", "u", "--pass",
 * "p", or "--tls", "--tlscert", FILE, "--tlskey", FILE), NULL-terminated; the
 * array must stay valid while the server may be restarted. */
struct h_nats *h_nats_start_ex(bool jetstream, const char *const *extra);
/* "nats://127.0.0.1:PORT" (valid whether the server runs or not). */
const char *h_nats_url(const struct h_nats *n);
int h_nats_port(const struct h_nats *n);
/* SIGTERM, wait up to 5 s, then SIGKILL. Returns like h_broker_stop_sig: the
 * exit code (nats-server 2.9 exits 1 on SIGTERM), -1 killed by a signal, -2
 * did not exit in time (then SIGKILLed). No-op (returns the last result's
 * code) when not running. */
int h_nats_stop(struct h_nats *n);
/* SIGKILL and reap (a crash: JetStream gets no clean shutdown). */
void h_nats_kill(struct h_nats *n);
/* Start again on the same port with the same store (stopping it first with
 * h_nats_stop if it still runs); asserts it is ready within H_NATS_START_MS,
 * also when another process took the port meanwhile (the log says so). */
void h_nats_restart(struct h_nats *n);
/* Whether the server process still runs (reaps it when it exited). */
bool h_nats_alive(struct h_nats *n);
/* The whole log file: every run's lines, in order. */
const char *h_nats_log(const struct h_nats *n);

/* A NATS request from a client of the test's own (core NATS protocol over a
 * plain socket, no headers): publish `payload` (NUL-terminated) on `subject`
 * with a private inbox as reply subject and return the first reply's payload
 * (registry-owned), or NULL when none came within timeout_ms (or the server
 * closed the connection). For JetStream's API ($JS.API.STREAM.INFO.NAME ...),
 * whose replies are JSON. Does not assert. */
const char *h_nats_request(const struct h_nats *n, const char *subject, const char *payload,
                           int timeout_ms);

/* Stampede cluster nodes. A node is h_broker_start_ex(workers, true, ...)
 * with "--cluster URL --node-name NAME" before the extra arguments: a loopback
 * stomp:// listener on port 0, and the start waits only for the "listening on"
 * line, NOT for the node to reach NATS (see h_broker_log_wait for that).
 *
 * h_cluster_node: the server's URL, 2 workers, extra arguments as a NULL-
 * terminated list (h_cluster_node(n, "a", NULL), h_cluster_node(n, "b",
 * "--workers", "1", NULL): a --workers among them replaces the default).
 * h_cluster_node_ex: any --cluster URL (e.g. one nothing listens on), the
 * worker count (<= 0: no --workers flag), args and env as h_broker_start_ex. */
struct h_broker *h_cluster_node(struct h_nats *n, const char *name, ...) __attribute__((sentinel));
struct h_broker *h_cluster_node_ex(const char *url, const char *name, int workers,
                                   const char *const *args, const char *const *env);

/* True when the broker's log contains `needle` within timeout_ms (polled
 * every 10 ms); false on timeout, or at once when the broker exited and its
 * log does not contain it. Does not assert. */
bool h_broker_log_wait(struct h_broker *b, const char *needle, int timeout_ms);
/* The same, until `needle` occurs at least n times (e.g. the second
 * "connected" line after h_nats_restart). */
bool h_broker_log_wait_n(struct h_broker *b, const char *needle, size_t n, int timeout_ms);
/* How many times `needle` occurs in `text` (e.g. in h_broker_log). */
size_t h_count(const char *text, const char *needle);

/* A raw NATS client (plain TCP), for what no Stampede node would send.
 * h_nats_raw_dial: connected and CONNECTed (asserts). h_nats_raw_pub: PUB
 * subject (reply NULL: none) with payload p[0, n), then PING, and waits for
 * the PONG (the server has routed it by then; asserts). h_nats_raw_sub: SUB
 * subject as sid. h_nats_raw_next_msg: the next MSG's subject and reply
 * ("" when none) into the caller's buffers (each 256 bytes), skipping other
 * lines and the payload; false after timeout_ms. */
int h_nats_raw_dial(int port);
void h_nats_raw_pub(int fd, const char *subject, const char *reply, const void *p, size_t n);
void h_nats_raw_sub(int fd, const char *subject, int sid);
bool h_nats_raw_next_msg(int fd, char *subject, char *reply, int timeout_ms);
/* The cluster's message format (src/cluster/wire.h), built by hand into
 * out (room for 29 + tail_len bytes): from `origin`, number `seq`, no
 * expiry, not persistent. Returns its length. */
size_t h_cluster_wire(char *out, uint64_t origin, uint64_t seq, const char *tail, size_t tail_len);

/* A cluster node's /metrics (it needs a ws:// listener, where /metrics is
 * served): one series's value (-1 when missing), and whether it reaches at
 * least `want` within ms (polled every 20 ms). */
double h_node_metric(struct h_broker *b, const char *series);
bool h_node_metric_reaches(struct h_broker *b, const char *series, double want, int ms);

#endif
