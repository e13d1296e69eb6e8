/*
 * 28_cluster_queues.c - queues across Stampede nodes on JetStream (issue 14,
 * docs/CLUSTER.md "Queues"), against a real nats-server with JetStream.
 *
 * The contract tested: with --cluster every /queue/NAME is one queue over
 * all nodes, stored in JetStream (stream STP_QUEUES, subjects stp.q.>), and
 * a RECEIPT for a SEND means it is stored; each message goes to exactly one
 * consumer on any node; one publisher's order is kept; a killed node's
 * unacked messages go to other consumers after --cluster-ack-wait, marked
 * redelivered, while a live node keeps (renews) what its consumers hold;
 * NACK returns a message, ACK removes it for good; prefetch-count bounds
 * what a node leases; NATS away refuses queue SENDs (ERROR "message not
 * stored") while topics work locally; the queue bound is JetStream's (a
 * full queue refuses); dead letters go to /queue/DLQ.NAME, a cluster queue
 * too; replies to temp queues cross nodes without JetStream; /metrics
 * counts what a node stored and leased. (Junk published straight into the
 * stream: 29_cluster_queue_hostile.)
 *
 * What JetStream holds is read with the harness's own NATS client
 * (h_nats_request on $JS.API.STREAM.INFO), never through a node. Every wait
 * is bounded; everything listens on 127.0.0.1.
 */
#include "harness.h"
#include "nats_harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(cluster_queues, .init = h_init, .fini = h_fini, .timeout = 60);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NOT_STORED "message not stored"

/* A node with a ws:// listener too (/metrics, /healthz) and the extra
 * arguments (NULL-terminated, may be NULL); waits until it reached NATS. */
static struct h_broker *qnode(struct h_nats *n, const char *name, const char *const *extra)
{
    const char *args[32];
    size_t k = 0;
    args[k++] = "--listen";
    args[k++] = "ws://127.0.0.1:0/ws";
    for (size_t i = 0; extra && extra[i]; i++) {
        cr_assert(k < 31);
        args[k++] = extra[i];
    }
    args[k] = NULL;
    struct h_broker *b = h_cluster_node_ex(h_nats_url(n), name, 2, args, NULL);
    cr_assert(h_broker_log_wait(b, "cluster: connected to NATS at", 10000),
              "node %s did not reach NATS:\n%s", name, h_broker_log(b));
    return b;
}

/* Polls /metrics until `series` == want (ms); the last value seen. */
static double metric_until(struct h_broker *b, const char *series, double want, int ms)
{
    double v = -1;
    for (uint64_t end = h_now_ms() + (uint64_t)ms; h_now_ms() < end; h_sleep_ms(50)) {
        v = h_node_metric(b, series);
        if (v == want)
            break;
    }
    return v;
}

static void kill9(struct h_broker *b)
{
    cr_assert_eq(h_broker_stop_sig(b, SIGKILL, 5000), -1, "the node did not die of SIGKILL");
}

/* "/queue/NAME" -> "/queue/DLQ.NAME". */
static const char *dlq_of(const char *q)
{
    cr_assert(strncmp(q, "/queue/", 7) == 0);
    return h_fmt("/queue/DLQ.%s", q + 7);
}

/* --- what JetStream holds, asked directly --- */

/* STREAM.INFO of STP_QUEUES with its per-subject counts (JSON). */
static const char *stream_info(struct h_nats *n)
{
    const char *r = h_nats_request(n, "$JS.API.STREAM.INFO.STP_QUEUES",
                                   "{\"subjects_filter\":\"stp.q.>\"}", 3000);
    cr_assert_not_null(r, "no answer from JetStream's API");
    return r;
}

/* The NATS subject of queue q ("/queue/NAME"), written here from the
 * mapping src/cluster/subject.h documents: "stp.q." then NAME as one token,
 * every byte outside [A-Za-z0-9_-] as "~XX". */
static const char *subject_of(const char *q)
{
    cr_assert(strncmp(q, "/queue/", 7) == 0);
    char tok[512];
    size_t k = 0;
    for (const unsigned char *s = (const unsigned char *)q + 7; *s && k + 4 < sizeof tok; s++) {
        bool plain = (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
                     (*s >= '0' && *s <= '9') || *s == '_' || *s == '-';
        if (plain)
            tok[k++] = (char)*s;
        else
            k += (size_t)snprintf(tok + k, sizeof tok - k, "~%02X", *s);
    }
    tok[k] = '\0';
    return h_fmt("stp.q.%s", tok);
}

/* Messages JetStream holds for queue q; 0 when the stream does not list
 * its subject. Asserts the stream exists. */
static long stored(struct h_nats *n, const char *q)
{
    const char *info = stream_info(n);
    cr_assert(strstr(info, "\"error\"") == NULL, "STREAM.INFO STP_QUEUES: %s", info);
    const char *key = h_fmt("\"%s\":", subject_of(q));
    const char *p = strstr(info, key);
    return p ? strtol(p + strlen(key), NULL, 10) : 0;
}

/* Messages in the whole stream. */
static long stored_total(struct h_nats *n)
{
    const char *info = stream_info(n);
    const char *p = strstr(info, "\"state\":{\"messages\":");
    cr_assert(p != NULL, "STREAM.INFO STP_QUEUES: %s", info);
    return strtol(p + strlen("\"state\":{\"messages\":"), NULL, 10);
}

/* Polls until JetStream holds `want` messages for q (ms); the last count. */
static long stored_until(struct h_nats *n, const char *q, long want, int ms)
{
    long v = -1;
    for (uint64_t end = h_now_ms() + (uint64_t)ms; h_now_ms() < end; h_sleep_ms(50)) {
        v = stored(n, q);
        if (v == want)
            break;
    }
    return v;
}

/* Waits (10 s, asserts) until the stream's consumers have `want` pull
 * requests waiting at JetStream in all (num_waiting in CONSUMER.LIST: the
 * test's queue is the only one, with one consumer shared by the nodes, and
 * a node at rest has one pull out per queue). */
static void wait_pulls(struct h_nats *n, long want)
{
    const char *r = NULL;
    for (uint64_t end = h_now_ms() + 10000; h_now_ms() < end; h_sleep_ms(20)) {
        r = h_nats_request(n, "$JS.API.CONSUMER.LIST.STP_QUEUES", "{\"offset\":0}", 3000);
        long sum = 0;
        for (const char *p = r; p && (p = strstr(p, "\"num_waiting\":")); p++)
            sum += strtol(p + strlen("\"num_waiting\":"), NULL, 10);
        if (sum >= want)
            return;
    }
    cr_assert_fail("fewer than %ld pulls waiting at JetStream after 10 s: %s", want,
                   r ? r : "(no answer)");
}

/* --- frames --- */

/* A MESSAGE on c within ms with body `body` and redelivered:`redelivered`. */
static struct h_frame *expect_msg(struct h_conn *c, const char *body, const char *redelivered,
                                  int ms)
{
    struct h_frame *f = h_read(c, ms);
    cr_assert(f != NULL, "expected MESSAGE '%s', got nothing within %d ms (%s)", body, ms,
              c->closed ? "closed" : "timeout");
    cr_assert(strcmp(f->cmd, "MESSAGE") == 0 && strcmp(f->body, body) == 0,
              "expected MESSAGE '%s', got %s", body, h_show(f));
    const char *r = h_hdr(f, "redelivered");
    cr_assert(r && strcmp(r, redelivered) == 0, "expected redelivered:%s on '%s': %s", redelivered,
              body, h_show(f));
    return f;
}

/* The next frame on any of cs[0, n) within ms, polling each in turn; *which
 * says whose. NULL when none came. */
static struct h_frame *read_any(struct h_conn **cs, int n, int *which, int ms)
{
    uint64_t end = h_now_ms() + (uint64_t)ms;
    do {
        for (int i = 0; i < n; i++) {
            struct h_frame *f = h_read(cs[i], 5);
            if (f) {
                *which = i;
                return f;
            }
        }
    } while (h_now_ms() < end);
    return NULL;
}

/* SEND body to q with a receipt and `extra` header lines ("" or lines
 * ending "\n"), asserting the RECEIPT. */
static void send_stored(struct h_conn *c, const char *q, const char *body, const char *extra)
{
    const char *rid = h_rid(c);
    h_sendf(c, "SEND\ndestination:%s\n%sreceipt:%s\n\n%s", q, extra, rid, body);
    h_expect_receipt(c, rid);
}

/* The answer to a SEND with receipt `rid` is ERROR message:"message not
 * stored" with receipt-id:rid within ms, then the connection closes. */
static void expect_not_stored(struct h_conn *c, const char *rid, int ms)
{
    struct h_frame *f = h_read(c, ms);
    cr_assert(f != NULL, "expected ERROR '%s', got nothing within %d ms (%s)", NOT_STORED, ms,
              c->closed ? "closed" : "timeout");
    cr_assert(strcmp(f->cmd, "ERROR") == 0 && h_hdr(f, "message") &&
                  strcmp(h_hdr(f, "message"), NOT_STORED) == 0,
              "expected ERROR message:%s, got %s", NOT_STORED, h_show(f));
    cr_assert(h_hdr(f, "receipt-id") && strcmp(h_hdr(f, "receipt-id"), rid) == 0,
              "ERROR without receipt-id:%s: %s", rid, h_show(f));
    struct h_frame *more = NULL;
    cr_assert(h_wait_closed(c, 3000, &more), "not closed after the ERROR (%s)",
              more ? h_show(more) : "still open");
}

/* The dead letter (x-death-reason, x-original-destination, the sender's
 * own header) on another node's consumer of /queue/DLQ.NAME. */
static struct h_frame *expect_dead_letter(struct h_conn *c, const char *q, const char *body)
{
    struct h_frame *f = expect_msg(c, body, "false", 5000);
    const char *dest = h_hdr(f, "destination"), *why = h_hdr(f, "x-death-reason"),
               *orig = h_hdr(f, "x-original-destination");
    cr_assert(dest && strcmp(dest, dlq_of(q)) == 0, "dead letter's destination: %s", h_show(f));
    cr_assert(why && strcmp(why, "rejected") == 0, "x-death-reason: %s", h_show(f));
    cr_assert(orig && strcmp(orig, q) == 0, "x-original-destination: %s", h_show(f));
    cr_assert(h_hdr(f, "x-keep") && strcmp(h_hdr(f, "x-keep"), "me") == 0,
              "the rejected message's own header is lost: %s", h_show(f));
    return f;
}

/* ===================================================================== */
/* One queue, stored in JetStream                                         */
/* ===================================================================== */

/* A RECEIPT means JetStream has it: the publishing node killed before any
 * consumer exists loses nothing, and a node started afterwards delivers it
 * in order with the sender's headers. */
Test(cluster_queues, stored_before_any_consumer_survives_the_publishing_node)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL);
    const char *q = h_dest("queue", "kept");
    struct h_conn *p = h_client(a, "1.2");
    enum { N = 5 };
    for (int k = 0; k < N; k++)
        send_stored(p, q, h_fmt("k%d", k), h_fmt("x-n:%d\n", k));
    /* In JetStream: the stream STP_QUEUES on stp.q.> (Go's JSON writes '>'
     * as \u003e), under the queue's subject. */
    const char *info = stream_info(n);
    cr_assert(strstr(info, "\"name\":\"STP_QUEUES\"") &&
                  strstr(info, "\"subjects\":[\"stp.q.\\u003e\"]"),
              "STREAM.INFO STP_QUEUES: %s", info);
    cr_assert_eq(stored(n, q), N);
    kill9(a);
    struct h_broker *b = qnode(n, "b", NULL);
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", "");
    for (int k = 0; k < N; k++) {
        struct h_frame *f = expect_msg(c, h_fmt("k%d", k), "false", 5000);
        cr_assert_str_eq(h_hdr(f, "destination"), q);
        cr_assert(h_hdr(f, "x-n") && strcmp(h_hdr(f, "x-n"), h_fmt("%d", k)) == 0,
                  "the sender's header is lost: %s", h_show(f));
    }
    h_expect_silence(c, 300);
    /* Auto-acked: JetStream removes them (a work queue). */
    cr_assert_eq(stored_until(n, q, 0, 5000), 0);
    h_broker_stop_ok(b);
}

/* Three nodes, a consumer on each (one ack:auto, two client-individual
 * that ACK), two publishers on two nodes: every message reaches exactly one
 * consumer, each consumer sees each publisher's messages in order, every
 * node gets some (prefetch-count 10 each), and the acks reached JetStream
 * (nothing comes again after the 2 s ack wait). */
Test(cluster_queues, exactly_once_across_three_nodes)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *nodes[3];
    for (int i = 0; i < 3; i++)
        nodes[i] = qnode(n, h_fmt("n%d", i + 1), ARGS("--cluster-ack-wait", "2s"));
    const char *q = h_dest("queue", "once");
    const char *modes[3] = {"auto", "client-individual", "client-individual"};
    struct h_conn *cons[3];
    for (int i = 0; i < 3; i++) {
        cons[i] = h_client(nodes[i], "1.2");
        h_subscribe(cons[i], q, "s", modes[i], "prefetch-count:10\n");
    }
    /* Each node's first pull waits at JetStream before the first SEND (the
     * spread below depends on it, as JetStream serves waiting pulls in turn). */
    wait_pulls(n, 3);
    struct h_conn *pubs[2] = {h_client(nodes[0], "1.2"), h_client(nodes[1], "1.2")};
    enum { PER = 150, N = 2 * PER };
    for (int k = 0; k < PER; k++)
        for (int j = 0; j < 2; j++)
            h_publish(pubs[j], q, h_fmt("%c%d", 'a' + j, k), k == PER - 1);
    static int seen[2][PER];
    memset(seen, 0, sizeof seen);
    int per_node[3] = {0}, last[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}}, total = 0;
    uint64_t end = h_now_ms() + 20000;
    while (total < N && h_now_ms() < end) {
        int i = -1;
        struct h_frame *f = read_any(cons, 3, &i, 100);
        if (f == NULL)
            continue;
        cr_assert(strcmp(f->cmd, "MESSAGE") == 0, "node %d: %s", i + 1, h_show(f));
        int j = f->body[0] - 'a', k = atoi(f->body + 1);
        cr_assert(j >= 0 && j < 2 && k >= 0 && k < PER, "node %d: %s", i + 1, h_show(f));
        cr_assert_eq(seen[j][k], 0, "'%s' delivered twice (node %d after node %d)", f->body, i + 1,
                     seen[j][k]);
        seen[j][k] = i + 1;
        cr_assert(k > last[i][j], "node %d: '%s' after %c%d", i + 1, f->body, 'a' + j, last[i][j]);
        last[i][j] = k;
        cr_assert_str_eq(h_hdr(f, "redelivered"), "false", "%s", h_show(f));
        per_node[i]++;
        total++;
        if (i > 0)
            h_ack(cons[i], f, NULL, false);
    }
    cr_assert_eq(total, N, "%d of %d delivered (per node %d %d %d)", total, N, per_node[0],
                 per_node[1], per_node[2]);
    /* All three wait at once: 2.5 s > the ack wait. */
    h_expect_silence(cons[0], 2500);
    h_expect_silence(cons[1], 100);
    h_expect_silence(cons[2], 100);
    for (int i = 0; i < 3; i++)
        cr_assert(per_node[i] >= 1, "node %d's consumer got nothing (per node %d %d %d)", i + 1,
                  per_node[0], per_node[1], per_node[2]);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    for (int i = 0; i < 3; i++)
        h_broker_stop_ok(nodes[i]);
}

Test(cluster_queues, one_publishers_order_across_nodes)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    const char *q = h_dest("queue", "order");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", "");
    struct h_conn *p = h_client(a, "1.2");
    enum { N = 200 };
    for (int k = 0; k < N; k++)
        h_publish(p, q, h_fmt("o%d", k), k == N - 1);
    for (int k = 0; k < N; k++)
        expect_msg(c, h_fmt("o%d", k), "false", 5000);
    h_expect_silence(c, 300);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* Acks, leases, redelivery                                               */
/* ===================================================================== */

/* Node A's consumer (ack:client, prefetch 5) holds u0..u4 unacked and A is
 * killed: a consumer on B gets all ten, u0..u4 again marked redelivered
 * (after the 2 s ack wait), u5..u9 not (A leased only what its consumer
 * could take), each once. */
Test(cluster_queues, killed_nodes_unacked_messages_go_to_another_node)
{
    struct h_nats *n = h_nats_start(true);
    const char *const wait2[] = {"--cluster-ack-wait", "2s", NULL};
    struct h_broker *a = qnode(n, "a", wait2), *b = qnode(n, "b", wait2);
    const char *q = h_dest("queue", "lease");
    struct h_conn *p = h_client(b, "1.2");
    enum { N = 10, HELD = 5 };
    for (int k = 0; k < N; k++)
        h_publish(p, q, h_fmt("u%d", k), k == N - 1);
    struct h_conn *ca = h_client(a, "1.2");
    h_subscribe(ca, q, "s", "client", "prefetch-count:5\n");
    for (int k = 0; k < HELD; k++)
        expect_msg(ca, h_fmt("u%d", k), "false", 5000);
    h_expect_silence(ca, 500);
    kill9(a);
    struct h_conn *cb = h_client(b, "1.2");
    h_subscribe(cb, q, "s", "auto", "");
    int seen[N] = {0};
    uint64_t start = h_now_ms();
    for (int got = 0; got < N; got++) {
        uint64_t now = h_now_ms();
        int left = now - start >= 10000 ? 0 : (int)(10000 - (now - start));
        struct h_frame *f = h_read(cb, left);
        cr_assert(f != NULL, "B got %d of %d messages within 10 s (%s)", got, N,
                  cb->closed ? "closed" : "timeout");
        cr_assert(strcmp(f->cmd, "MESSAGE") == 0 && f->body[0] == 'u', "%s", h_show(f));
        int k = atoi(f->body + 1);
        cr_assert(k >= 0 && k < N && !seen[k], "unexpected or repeated: %s", h_show(f));
        seen[k] = 1;
        const char *want = k < HELD ? "true" : "false";
        cr_assert(h_hdr(f, "redelivered") && strcmp(h_hdr(f, "redelivered"), want) == 0,
                  "expected redelivered:%s: %s", want, h_show(f));
    }
    h_expect_silence(cb, 2500); /* > the ack wait: B's auto acks reached JetStream */
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    h_broker_stop_ok(b);
}

/* A NACK puts the message back in the queue: it comes again, marked
 * redelivered, to B's consumer or A's (whichever fetches next); while A
 * held it, B did not get it. */
Test(cluster_queues, nack_returns_the_message_to_the_queue)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    const char *q = h_dest("queue", "nack");
    struct h_conn *p = h_client(a, "1.2");
    send_stored(p, q, "n1", "");
    struct h_conn *cs[2] = {h_client(a, "1.2"), h_client(b, "1.2")};
    h_subscribe(cs[0], q, "s", "client-individual", "prefetch-count:1\n");
    struct h_frame *f = expect_msg(cs[0], "n1", "false", 5000);
    h_subscribe(cs[1], q, "s", "client-individual", "prefetch-count:1\n");
    h_expect_silence(cs[1], 500); /* leased by A */
    h_nack(cs[0], f, NULL, true);
    int who = -1;
    struct h_frame *g = read_any(cs, 2, &who, 5000);
    cr_assert(g != NULL, "the NACKed message did not come back within 5 s");
    cr_assert(strcmp(g->cmd, "MESSAGE") == 0 && strcmp(g->body, "n1") == 0, "%s", h_show(g));
    cr_assert(h_hdr(g, "redelivered") && strcmp(h_hdr(g, "redelivered"), "true") == 0,
              "a NACKed message came back without redelivered:true: %s", h_show(g));
    h_ack(cs[who], g, NULL, true);
    h_expect_silence(cs[0], 500);
    h_expect_silence(cs[1], 100);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* With a 1 s ack wait: ACKed messages never come again, to anyone, in 3 s
 * (and JetStream no longer holds them). A message left unacked by a live
 * consumer stays with it (its node renews the lease) for those 3 ack waits
 * too; when that consumer's connection goes, the other node's consumer gets
 * it, marked redelivered. */
Test(cluster_queues, ack_removes_the_message_for_good)
{
    struct h_nats *n = h_nats_start(true);
    const char *const wait1[] = {"--cluster-ack-wait", "1s", NULL};
    struct h_broker *a = qnode(n, "a", wait1), *b = qnode(n, "b", wait1);
    const char *q = h_dest("queue", "ack");
    struct h_conn *p = h_client(a, "1.2");
    send_stored(p, q, "k1", "");
    send_stored(p, q, "k2", "");
    struct h_conn *ca = h_client(a, "1.2");
    h_subscribe(ca, q, "s", "client-individual", "prefetch-count:1\n");
    h_ack(ca, expect_msg(ca, "k1", "false", 5000), NULL, true);
    h_ack(ca, expect_msg(ca, "k2", "false", 5000), NULL, true);
    struct h_conn *cb = h_client(b, "1.2");
    h_subscribe(cb, q, "s", "client-individual", "prefetch-count:1\n");
    h_expect_silence(ca, 3000);
    h_expect_silence(cb, 100);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    /* Held unacked by a live consumer: renewed, not handed on. */
    send_stored(p, q, "k3", "");
    struct h_conn *cs[2] = {ca, cb};
    int who = -1;
    struct h_frame *f = read_any(cs, 2, &who, 5000);
    cr_assert(f && strcmp(f->cmd, "MESSAGE") == 0 && strcmp(f->body, "k3") == 0,
              "expected k3, got %s", h_show(f));
    struct h_conn *other = cs[1 - who];
    h_expect_silence(other, 3000);
    h_expect_silence(cs[who], 100);
    cr_assert_eq(stored(n, q), 1);
    h_close(cs[who]); /* its consumer leaves: the lease goes back */
    h_ack(other, expect_msg(other, "k3", "true", 5000), NULL, true);
    h_expect_silence(other, 300);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* ack:client prefetch-count 1 on A: exactly one message until it ACKs,
 * then the next; and A's node leases only that one: while A holds p2, a
 * consumer on B gets p3 and p4 at once (the ack wait is the default 30 s). */
Test(cluster_queues, prefetch_count_bounds_a_nodes_lease)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    const char *q = h_dest("queue", "prefetch");
    struct h_conn *p = h_client(b, "1.2");
    for (int k = 0; k < 5; k++)
        h_publish(p, q, h_fmt("p%d", k), k == 4);
    struct h_conn *ca = h_client(a, "1.2");
    h_subscribe(ca, q, "s", "client", "prefetch-count:1\n");
    struct h_frame *held = NULL;
    for (int k = 0; k < 3; k++) {
        held = expect_msg(ca, h_fmt("p%d", k), "false", 5000);
        h_expect_silence(ca, 400);
        if (k < 2)
            h_ack(ca, held, NULL, true);
    }
    struct h_conn *cb = h_client(b, "1.2");
    h_subscribe(cb, q, "s", "auto", "");
    expect_msg(cb, "p3", "false", 3000);
    expect_msg(cb, "p4", "false", 3000);
    h_ack(ca, held, NULL, true);
    h_expect_silence(ca, 300);
    h_expect_silence(cb, 100);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* A node stopped with SIGTERM gives its consumers' leases back at once: the
 * other node's consumer gets them well before the (default 30 s) ack wait,
 * marked redelivered, in order, after which nothing is left. */
Test(cluster_queues, sigterm_gives_leases_back_at_once)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    const char *q = h_dest("queue", "term");
    struct h_conn *p = h_client(b, "1.2");
    for (int k = 0; k < 3; k++)
        h_publish(p, q, h_fmt("t%d", k), k == 2);
    struct h_conn *ca = h_client(a, "1.2");
    h_subscribe(ca, q, "s", "client-individual", "prefetch-count:3\n");
    for (int k = 0; k < 3; k++)
        expect_msg(ca, h_fmt("t%d", k), "false", 5000);
    h_broker_stop_ok(a);
    struct h_conn *cb = h_client(b, "1.2");
    h_subscribe(cb, q, "s", "auto", "");
    for (int k = 0; k < 3; k++)
        expect_msg(cb, h_fmt("t%d", k), "true", 5000);
    h_expect_silence(cb, 300);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    h_broker_stop_ok(b);
}

/* Selectors across nodes: a "red" consumer on A and a "blue" one on B each
 * get exactly their colour, all of it, once. (Not in order: a node gives
 * back what none of its consumers matches, and JetStream hands it out
 * again after the messages behind it, as docs/CLUSTER.md says.) */
Test(cluster_queues, selectors_across_nodes)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    const char *q = h_dest("queue", "sel");
    struct h_conn *cs[2] = {h_client(a, "1.2"), h_client(b, "1.2")};
    const char *colour[2] = {"red", "blue"};
    for (int i = 0; i < 2; i++)
        h_subscribe(cs[i], q, "s", "client-individual",
                    h_fmt("selector:colour = '%s'\nprefetch-count:5\n", colour[i]));
    struct h_conn *p = h_client(a, "1.2");
    enum { N = 20 };
    for (int k = 0; k < N; k++) {
        const char *rid = h_rid(p);
        h_sendf(p, "SEND\ndestination:%s\ncolour:%s\nreceipt:%s\n\n%s%d", q, colour[k % 2], rid,
                colour[k % 2], k);
        h_expect_receipt(p, rid);
    }
    int seen[N] = {0}, total = 0;
    uint64_t end = h_now_ms() + 15000;
    while (total < N && h_now_ms() < end) {
        int i = -1;
        struct h_frame *f = read_any(cs, 2, &i, 100);
        if (f == NULL)
            continue;
        cr_assert(strcmp(f->cmd, "MESSAGE") == 0, "%s", h_show(f));
        size_t cl = strlen(colour[i]);
        cr_assert(strncmp(f->body, colour[i], cl) == 0, "the %s consumer got %s", colour[i],
                  h_show(f));
        int k = atoi(f->body + cl);
        cr_assert(k >= 0 && k < N && k % 2 == i && !seen[k], "unexpected or repeated: %s",
                  h_show(f));
        seen[k] = 1;
        total++;
        h_ack(cs[i], f, NULL, false);
    }
    cr_assert_eq(total, N, "%d of %d delivered", total, N);
    h_expect_silence(cs[0], 300);
    h_expect_silence(cs[1], 100);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* Delivery counts come from JetStream (README, docs/CLUSTER.md "Delivery
 * counts"): a message a node leased and gave back because none of its
 * consumers' selectors matched it counts as delivered. With B's blue pull
 * waiting, the red message goes to B first and back; its first delivery to
 * the red consumer on A is marked redelivered, and with --max-redeliveries 1
 * its first NACK rejects it: the dead letter reaches B's DLQ consumer, so
 * nothing is lost either way. */
Test(cluster_queues, selector_round_trips_count_as_deliveries)
{
    struct h_nats *n = h_nats_start(true);
    const char *const args[] = {"--dead-letter=yes", "--max-redeliveries", "1", NULL};
    struct h_broker *a = qnode(n, "a", args), *b = qnode(n, "b", args);
    const char *q = h_dest("queue", "round");
    struct h_conn *blue = h_client(b, "1.2");
    h_subscribe(blue, q, "s", "client-individual", "selector:colour = 'blue'\nprefetch-count:5\n");
    wait_pulls(n, 1);
    struct h_conn *p = h_client(a, "1.2");
    send_stored(p, q, "r", "colour:red\nx-keep:me\n");
    h_sleep_ms(500); /* B's node leases r and gives it back, maybe several times */
    h_expect_silence(blue, 0);
    struct h_conn *red = h_client(a, "1.2");
    h_subscribe(red, q, "s", "client-individual", "selector:colour = 'red'\nprefetch-count:1\n");
    h_nack(red, expect_msg(red, "r", "true", 5000), NULL, true);
    h_expect_silence(red, 500);
    struct h_conn *d = h_client(b, "1.2");
    h_subscribe(d, dlq_of(q), "d", "client-individual", "");
    h_ack(d, expect_dead_letter(d, q, "r"), NULL, true);
    h_expect_silence(d, 300);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    cr_assert_eq(stored_until(n, dlq_of(q), 0, 3000), 0);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* A dedup-id is one across nodes (JetStream's Nats-Msg-Id): the second SEND
 * with it, on the other node, is receipted and not delivered; the same id
 * on another queue is another message. */
Test(cluster_queues, dedup_id_across_nodes)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    const char *q = h_dest("queue", "dedup"), *q2 = h_dest("queue", "dedup2");
    send_stored(h_client(a, "1.2"), q, "one", "dedup-id:d-1\n");
    send_stored(h_client(b, "1.2"), q, "two", "dedup-id:d-1\n");
    send_stored(h_client(b, "1.2"), q2, "three", "dedup-id:d-1\n");
    cr_assert_eq(stored(n, q), 1);
    cr_assert_eq(stored(n, q2), 1);
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", "");
    expect_msg(c, "one", "false", 5000);
    h_expect_silence(c, 300);
    h_subscribe(c, q2, "s2", "auto", "");
    expect_msg(c, "three", "false", 5000);
    h_expect_silence(c, 300);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* A message that expires while stored is never delivered: its dead letter
 * (x-death-reason:expired) reaches the DLQ's consumer on the other node. */
Test(cluster_queues, expired_message_is_not_delivered_and_dead_letters)
{
    struct h_nats *n = h_nats_start(true);
    const char *const dl[] = {"--dead-letter=yes", NULL};
    struct h_broker *a = qnode(n, "a", dl), *b = qnode(n, "b", dl);
    const char *q = h_dest("queue", "exp");
    struct h_conn *p = h_client(a, "1.2");
    send_stored(p, q, "old", "expiration:200\n");
    send_stored(p, q, "fresh", "");
    h_sleep_ms(500);
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", "");
    expect_msg(c, "fresh", "false", 5000);
    h_expect_silence(c, 300);
    h_subscribe(c, dlq_of(q), "d", "auto", "");
    struct h_frame *f = expect_msg(c, "old", "false", 5000);
    const char *why = h_hdr(f, "x-death-reason"), *orig = h_hdr(f, "x-original-destination");
    cr_assert(why && strcmp(why, "expired") == 0, "x-death-reason: %s", h_show(f));
    cr_assert(orig && strcmp(orig, q) == 0, "x-original-destination: %s", h_show(f));
    h_expect_silence(c, 300);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    cr_assert_eq(stored_until(n, dlq_of(q), 0, 3000), 0);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* What nodes lease is bounded by their consumers' room only (docs: the
 * consumer's MaxAckPending is unlimited): two consumers on two nodes with
 * prefetch-count 600 each hold 1,100 unacked messages between them, more
 * than JetStream's default MaxAckPending of 1,000. */
Test(cluster_queues, unacked_leases_are_bounded_by_consumers_only)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    const char *q = h_dest("queue", "many");
    struct h_conn *p = h_client(a, "1.2");
    enum { N = 1100 };
    for (int k = 0; k < N; k++)
        h_publish(p, q, h_fmt("m%d", k), k == N - 1);
    struct h_conn *cs[2] = {h_client(a, "1.2"), h_client(b, "1.2")};
    for (int i = 0; i < 2; i++)
        h_subscribe(cs[i], q, "s", "client-individual", "prefetch-count:600\n");
    static int seen[N];
    memset(seen, 0, sizeof seen);
    int per[2] = {0}, total = 0;
    uint64_t end = h_now_ms() + 15000;
    while (total < N && h_now_ms() < end) {
        int i = -1;
        struct h_frame *f = read_any(cs, 2, &i, 100);
        if (f == NULL)
            continue;
        cr_assert(strcmp(f->cmd, "MESSAGE") == 0 && f->body[0] == 'm', "%s", h_show(f));
        int k = atoi(f->body + 1);
        cr_assert(k >= 0 && k < N && !seen[k], "unexpected or repeated: %s", h_show(f));
        seen[k] = 1;
        per[i]++;
        total++;
    }
    cr_assert_eq(total, N, "%d of %d unacked messages delivered in 15 s (A %d, B %d)", total, N,
                 per[0], per[1]);
    h_expect_silence(cs[0], 300);
    h_expect_silence(cs[1], 100);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* Kill -9 a consuming node in the middle of the stream: nothing is lost.
 * Consumers on A and B (client-individual, prefetch 10, each ACKs what it
 * gets), 200 messages; A is killed after its 30th. Every message reaches a
 * consumer; a message that comes twice came first to A (whose ACK may not
 * have left) and the second time marked redelivered, to B. */
Test(cluster_queues, no_loss_when_a_consuming_node_is_killed_mid_stream)
{
    struct h_nats *n = h_nats_start(true);
    const char *const wait2[] = {"--cluster-ack-wait", "2s", NULL};
    struct h_broker *a = qnode(n, "a", wait2), *b = qnode(n, "b", wait2);
    const char *q = h_dest("queue", "midkill");
    struct h_conn *cs[2] = {h_client(a, "1.2"), h_client(b, "1.2")};
    for (int i = 0; i < 2; i++)
        h_subscribe(cs[i], q, "s", "client-individual", "prefetch-count:10\n");
    wait_pulls(n, 2);
    struct h_conn *p = h_client(b, "1.2");
    enum { N = 200 };
    for (int k = 0; k < N; k++)
        h_publish(p, q, h_fmt("m%d", k), k == N - 1);
    static int first[N]; /* 0: not yet; 1: to A; 2: to B */
    memset(first, 0, sizeof first);
    struct h_conn *rd[2] = {cs[0], cs[1]}; /* the connections still read */
    int node_of[2] = {0, 1}, live = 2, distinct = 0, at_a = 0;
    uint64_t end = h_now_ms() + 20000;
    while (distinct < N && h_now_ms() < end) {
        int j = -1;
        struct h_frame *f = read_any(rd, live, &j, 100);
        if (f == NULL)
            continue;
        int i = node_of[j];
        cr_assert(strcmp(f->cmd, "MESSAGE") == 0 && f->body[0] == 'm', "%s", h_show(f));
        int k = atoi(f->body + 1);
        cr_assert(k >= 0 && k < N, "%s", h_show(f));
        const char *r = h_hdr(f, "redelivered");
        if (first[k]) {
            cr_assert(first[k] == 1 && i == 1 && r && strcmp(r, "true") == 0,
                      "m%d again (first to %c), now to %c: %s", k, first[k] == 1 ? 'A' : 'B',
                      i ? 'B' : 'A', h_show(f));
        } else {
            first[k] = i + 1;
            distinct++;
        }
        h_ack(cs[i], f, NULL, false);
        if (i == 0 && ++at_a == 30) {
            kill9(a);
            rd[0] = cs[1];
            node_of[0] = 1;
            live = 1;
        }
    }
    cr_assert_eq(distinct, N, "%d of %d messages delivered (A got %d before the kill)", distinct, N,
                 at_a);
    cr_assert_eq(at_a, 30, "A did not get 30 messages before the kill");
    /* Copies of what A had acked just before dying may still come (after
     * the ack wait): each must be such a copy; B acks them. */
    for (struct h_frame *f; (f = h_read(cs[1], 3000)) != NULL;) {
        int k = f->body[0] == 'm' ? atoi(f->body + 1) : -1;
        const char *r = h_hdr(f, "redelivered");
        cr_assert(strcmp(f->cmd, "MESSAGE") == 0 && k >= 0 && k < N && first[k] == 1 && r &&
                      strcmp(r, "true") == 0,
                  "after all %d: %s", N, h_show(f));
        h_ack(cs[1], f, NULL, false);
    }
    cr_assert_eq(stored_until(n, q, 0, 5000), 0);
    h_broker_stop_ok(b);
}

/* STOMP 1.0 (ack:client, ACK by message-id) and 1.1 (client-individual,
 * message-id + subscription) consumers ack cluster queue messages too. */
Test(cluster_queues, acks_in_every_version)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    const char *versions[] = {"1.0", "1.1", "1.2"},
               *modes[] = {"client", "client-individual", "client"};
    for (int v = 0; v < 3; v++) {
        const char *q = h_dest("queue", "ver");
        struct h_conn *p = h_client(a, "1.2");
        send_stored(p, q, "v1", "");
        send_stored(p, q, "v2", "");
        struct h_conn *c = h_client(b, versions[v]);
        h_subscribe(c, q, "s", modes[v], "prefetch-count:1\n");
        h_ack(c, expect_msg(c, "v1", "false", 5000), NULL, true);
        h_ack(c, expect_msg(c, "v2", "false", 5000), NULL, true);
        h_expect_silence(c, 200);
        cr_assert_eq(stored_until(n, q, 0, 3000), 0, "STOMP %s: the ACKs did not reach JetStream",
                     versions[v]);
    }
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* Faults and bounds                                                      */
/* ===================================================================== */

/* NATS away: a queue SEND is refused (ERROR "message not stored", the
 * connection closes), a topic works locally, the node is up and degraded.
 * NATS back (same store): what was stored before is delivered, and queue
 * SENDs get RECEIPTs again. */
Test(cluster_queues, nats_away_refuses_queue_sends_then_resumes)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    const char *q = h_dest("queue", "away"), *t = h_dest("topic", "away");
    struct h_conn *p = h_client(a, "1.2");
    for (int k = 0; k < 3; k++)
        send_stored(p, q, h_fmt("before%d", k), "");
    h_nats_stop(n);
    cr_assert(h_broker_log_wait(a, "cluster: lost the NATS connection", 10000), "%s",
              h_broker_log(a));
    cr_assert_eq(h_node_metric(a, "stampede_cluster_connected"), 0);
    struct h_conn *away = h_client(a, "1.2");
    const char *rid = h_rid(away);
    h_sendf(away, "SEND\ndestination:%s\nreceipt:%s\n\nwhile-away", q, rid);
    expect_not_stored(away, rid, 10000);
    struct h_conn *ts = h_client(a, "1.2");
    h_subscribe(ts, t, "s", NULL, "");
    h_publish(p, t, "topic-while-away", true);
    expect_msg(ts, "topic-while-away", "false", 3000);
    cr_assert(h_broker_alive(a), "%s", h_broker_log(a));
    const char *health = h_http_get(h_listener_port(a, "ws"), "/healthz");
    cr_assert(strstr(health, "\"status\":\"degraded\""), "%s", health);

    h_nats_restart(n);
    cr_assert_eq(metric_until(a, "stampede_cluster_connected", 1, 15000), 1, "%s", h_broker_log(a));
    cr_assert_eq(metric_until(b, "stampede_cluster_connected", 1, 15000), 1, "%s", h_broker_log(b));
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", "");
    for (int k = 0; k < 3; k++)
        expect_msg(c, h_fmt("before%d", k), "false", 10000);
    send_stored(p, q, "after", "");
    expect_msg(c, "after", "false", 5000);
    h_expect_silence(c, 300); /* "while-away" was not stored */
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* A consumer holding leased messages acks them while NATS is away: the
 * ACKs are answered, and once NATS is back they reach JetStream (the
 * stream ends empty and nothing comes again; the ack wait is the default
 * 30 s, far longer than the outage). */
Test(cluster_queues, acks_made_while_nats_is_away_reach_jetstream)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL);
    const char *q = h_dest("queue", "awayack");
    struct h_conn *p = h_client(a, "1.2");
    for (int k = 0; k < 3; k++)
        h_publish(p, q, h_fmt("w%d", k), k == 2);
    struct h_conn *c = h_client(a, "1.2");
    h_subscribe(c, q, "s", "client-individual", "prefetch-count:3\n");
    struct h_frame *f[3];
    for (int k = 0; k < 3; k++)
        f[k] = expect_msg(c, h_fmt("w%d", k), "false", 5000);
    h_nats_stop(n);
    cr_assert(h_broker_log_wait(a, "cluster: lost the NATS connection", 10000), "%s",
              h_broker_log(a));
    for (int k = 0; k < 3; k++)
        h_ack(c, f[k], NULL, true);
    h_nats_restart(n);
    cr_assert_eq(metric_until(a, "stampede_cluster_connected", 1, 15000), 1, "%s", h_broker_log(a));
    cr_assert_eq(stored_until(n, q, 0, 10000), 0, "the ACKs made while NATS was away were lost");
    h_expect_silence(c, 300);
    h_broker_stop_ok(a);
}

/* --queue-max-messages 5 is JetStream's bound per queue: five SENDs are
 * stored, the sixth is refused; another queue is not affected; once
 * consumed, the queue takes messages again. */
Test(cluster_queues, a_full_queue_refuses_sends)
{
    struct h_nats *n = h_nats_start(true);
    const char *const max5[] = {"--queue-max-messages", "5", NULL};
    struct h_broker *a = qnode(n, "a", max5), *b = qnode(n, "b", max5);
    const char *q = h_dest("queue", "full"), *other = h_dest("queue", "roomy");
    struct h_conn *p = h_client(a, "1.2");
    for (int k = 0; k < 5; k++)
        send_stored(p, q, h_fmt("f%d", k), "");
    const char *rid = h_rid(p);
    h_sendf(p, "SEND\ndestination:%s\nreceipt:%s\n\nf5", q, rid);
    expect_not_stored(p, rid, 10000);
    cr_assert_eq(stored(n, q), 5);
    struct h_conn *p2 = h_client(a, "1.2");
    send_stored(p2, other, "o0", "");
    cr_assert_eq(stored(n, other), 1);
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", "");
    for (int k = 0; k < 5; k++)
        expect_msg(c, h_fmt("f%d", k), "false", 5000);
    h_expect_silence(c, 300);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    send_stored(p2, q, "f6", "");
    expect_msg(c, "f6", "false", 5000);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* A NATS server that takes messages of at most 4 KiB (max_payload): the
 * node warns at connect; a larger queue SEND is refused (ERROR "message not
 * stored" whose body names max_payload), a smaller one is stored; a larger
 * topic message reaches the node's own subscribers only. */
Test(cluster_queues, larger_than_max_payload_is_refused_saying_so)
{
    char conf[] = "/tmp/stampede-nats-conf-XXXXXX";
    int fd = mkstemp(conf);
    cr_assert(fd >= 0);
    static const char text[] = "max_payload: 4096\n";
    cr_assert(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
    close(fd);
    static const char *extra[3];
    extra[0] = "-c";
    extra[1] = h_fmt("%s", conf);
    extra[2] = NULL;
    struct h_nats *n = h_nats_start_ex(true, extra);
    unlink(conf);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    cr_assert(h_broker_log_wait(a, "max_payload", 3000), "%s", h_broker_log(a));
    const char *q = h_dest("queue", "big"), *t = h_dest("topic", "big");
    char big[8001];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct h_conn *sa = h_client(a, "1.2"), *sb = h_client(b, "1.2");
    h_subscribe(sa, t, "t", NULL, "");
    h_subscribe(sb, t, "t", NULL, "");
    struct h_conn *p = h_client(a, "1.2");
    h_publish(p, t, big, true);
    cr_assert_eq(h_expect(sa, "MESSAGE", 3000)->body_len, sizeof big - 1);
    h_expect_silence(sb, 500);
    send_stored(p, q, "small", "");
    const char *rid = h_rid(p);
    h_sendf(p, "SEND\ndestination:%s\nreceipt:%s\n\n%s", q, rid, big);
    struct h_frame *f = h_read(p, 5000);
    cr_assert(f && strcmp(f->cmd, "ERROR") == 0 && h_hdr(f, "message") &&
                  strcmp(h_hdr(f, "message"), NOT_STORED) == 0 && strstr(f->body, "max_payload"),
              "expected ERROR message:%s naming max_payload, got %s", NOT_STORED, h_show(f));
    cr_assert(h_hdr(f, "receipt-id") && strcmp(h_hdr(f, "receipt-id"), rid) == 0, "%s", h_show(f));
    cr_assert(h_wait_closed(p, 3000, NULL), "not closed after the ERROR");
    cr_assert_eq(stored(n, q), 1);
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", "");
    expect_msg(c, "small", "false", 5000);
    h_expect_silence(c, 300);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* Dead letters                                                           */
/* ===================================================================== */

/* NACK requeue:false on A: the message is not requeued; its dead letter is
 * consumed on B. */
Test(cluster_queues, rejected_message_dead_letters_across_nodes)
{
    struct h_nats *n = h_nats_start(true);
    const char *const dl[] = {"--dead-letter=yes", NULL};
    struct h_broker *a = qnode(n, "a", dl), *b = qnode(n, "b", dl);
    const char *q = h_dest("queue", "dl");
    struct h_conn *p = h_client(a, "1.2");
    send_stored(p, q, "bad", "x-keep:me\n");
    send_stored(p, q, "good", "");
    struct h_conn *ca = h_client(a, "1.2");
    h_subscribe(ca, q, "s", "client-individual", "prefetch-count:1\n");
    struct h_frame *f = expect_msg(ca, "bad", "false", 5000);
    const char *rid = h_rid(ca);
    h_sendf(ca, "NACK\nid:%s\nrequeue:false\nreceipt:%s\n\n", h_hdr(f, "ack"), rid);
    h_expect_receipt(ca, rid);
    h_ack(ca, expect_msg(ca, "good", "false", 5000), NULL, true);
    h_expect_silence(ca, 500); /* "bad" is not requeued */
    struct h_conn *cb = h_client(b, "1.2");
    h_subscribe(cb, dlq_of(q), "d", "client-individual", "");
    h_ack(cb, expect_dead_letter(cb, q, "bad"), NULL, true);
    h_expect_silence(cb, 300);
    struct h_conn *cq = h_client(b, "1.2");
    h_subscribe(cq, q, "s", "auto", "");
    h_expect_silence(cq, 300);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    cr_assert_eq(stored_until(n, dlq_of(q), 0, 3000), 0);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* --max-redeliveries 1: NACKed twice, the message is rejected; its dead
 * letter is consumed on the other node. */
Test(cluster_queues, max_redeliveries_dead_letters_across_nodes)
{
    struct h_nats *n = h_nats_start(true);
    const char *const dl[] = {"--dead-letter=yes", "--max-redeliveries", "1", NULL};
    struct h_broker *a = qnode(n, "a", dl), *b = qnode(n, "b", dl);
    const char *q = h_dest("queue", "maxr");
    struct h_conn *p = h_client(b, "1.2");
    send_stored(p, q, "x", "x-keep:me\n");
    struct h_conn *ca = h_client(a, "1.2");
    h_subscribe(ca, q, "s", "client-individual", "prefetch-count:1\n");
    h_nack(ca, expect_msg(ca, "x", "false", 5000), NULL, true); /* returned once: requeued */
    h_nack(ca, expect_msg(ca, "x", "true", 5000), NULL, true);  /* twice: rejected */
    h_expect_silence(ca, 500);
    struct h_conn *cb = h_client(b, "1.2");
    h_subscribe(cb, dlq_of(q), "d", "client-individual", "");
    h_ack(cb, expect_dead_letter(cb, q, "x"), NULL, true);
    h_expect_silence(cb, 300);
    h_expect_silence(ca, 100);
    cr_assert_eq(stored_until(n, q, 0, 3000), 0);
    cr_assert_eq(stored_until(n, dlq_of(q), 0, 3000), 0);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* Metrics, temp queues, what JetStream hands a node                      */
/* ===================================================================== */

/* A node counts what it stored in JetStream and what it fetched from it. */
Test(cluster_queues, metrics_count_stored_and_fetched)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    const char *q = h_dest("queue", "metrics");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "auto", "");
    struct h_conn *p = h_client(a, "1.2");
    enum { N = 20 };
    for (int k = 0; k < N; k++)
        h_publish(p, q, h_fmt("m%d", k), k == N - 1);
    for (int k = 0; k < N; k++)
        expect_msg(c, h_fmt("m%d", k), "false", 5000);
    cr_assert_eq(h_node_metric(a, "stampede_cluster_queue_messages_out_total"), N);
    cr_assert_eq(h_node_metric(b, "stampede_cluster_queue_messages_in_total"), N);
    cr_assert_eq(h_node_metric(a, "stampede_cluster_queue_messages_in_total"), 0);
    cr_assert_eq(h_node_metric(b, "stampede_cluster_queue_messages_out_total"), 0);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* Request/reply through /temp-queue/ across nodes: the request goes
 * through the cluster queue (stored in JetStream by the requester's node),
 * the responder on the other node replies to the private /reply-queue/
 * name and the reply reaches the requester's temp queue, without JetStream
 * (only the request was stored, by A; B stored nothing; the stream ends
 * empty). */
Test(cluster_queues, request_reply_across_nodes_keeps_replies_out_of_jetstream)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *a = qnode(n, "a", NULL), *b = qnode(n, "b", NULL);
    const char *rpc = h_dest("queue", "rpc");
    struct h_conn *server = h_client(b, "1.2");
    h_subscribe(server, rpc, "s", "auto", "");
    struct h_conn *client = h_client(a, "1.2");
    const char *rid = h_rid(client);
    h_sendf(client, "SEND\ndestination:%s\nreply-to:/temp-queue/r\nreceipt:%s\n\nq", rpc, rid);
    h_expect_receipt(client, rid);
    struct h_frame *req = expect_msg(server, "q", "false", 5000);
    const char *to = h_hdr(req, "reply-to");
    cr_assert(to && strncmp(to, "/reply-queue/", 13) == 0, "reply-to: %s", h_show(req));
    h_publish(server, to, "answer", true);
    struct h_frame *rep = h_expect(client, "MESSAGE", 5000);
    cr_assert_str_eq(rep->body, "answer");
    cr_assert_str_eq(h_hdr(rep, "subscription"), "/temp-queue/r");
    h_expect_silence(client, 300);
    cr_assert_eq(h_node_metric(a, "stampede_cluster_queue_messages_out_total"), 1);
    cr_assert_eq(h_node_metric(b, "stampede_cluster_queue_messages_out_total"), 0);
    long left = -1;
    for (uint64_t end = h_now_ms() + 3000; h_now_ms() < end && left != 0; h_sleep_ms(50))
        left = stored_total(n);
    cr_assert_eq(left, 0, "JetStream still holds messages: %s", stream_info(n));
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* --cluster-ack-wait is a duration (milliseconds, or with ms/s/m/h) from
 * 1 s to 1 h: anything else is one line on stderr naming the flag, exit 2;
 * the bounds themselves start a node. */
Test(cluster_queues, cluster_ack_wait_is_bounded)
{
    const char *bad[] = {"0", "999", "999ms", "3600001", "61m", "2h", "-1s", "abc", "2parsecs", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL, *err = NULL;
        int rc = h_run(ARGS("--listen", "stomp://127.0.0.1:0", "--cluster", "nats://127.0.0.1:1",
                            "--cluster-ack-wait", bad[i]),
                       NULL, 5000, &out, &err);
        cr_assert_eq(rc, 2, "--cluster-ack-wait '%s': exit %d, want 2; stderr: %s", bad[i], rc,
                     err);
        cr_assert(strstr(err, "cluster-ack-wait") != NULL &&
                      strchr(err, '\n') == err + strlen(err) - 1,
                  "--cluster-ack-wait '%s': want one line naming the flag: %s", bad[i], err);
    }
    struct h_nats *n = h_nats_start(true);
    struct h_broker *lo = qnode(n, "lo", ARGS("--cluster-ack-wait", "1000"));
    struct h_broker *hi = qnode(n, "hi", ARGS("--cluster-ack-wait", "1h"));
    h_bystander_ok(lo);
    h_bystander_ok(hi);
    h_broker_stop_ok(lo);
    h_broker_stop_ok(hi);
}

/* What bounds a queue's consumer in JetStream, as JetStream reports it:
 * one consumer per queue with the node's ack wait, an ack-pending bound far
 * above what nodes lease, and an inactivity threshold of one hour (so that
 * a client subscribing to ever new queue names does not pile up consumers
 * in the NATS server). */
Test(cluster_queues, a_queues_consumer_is_bounded_in_jetstream)
{
    struct h_nats *n = h_nats_start(true);
    const char *const wait3[] = {"--cluster-ack-wait", "3s", NULL};
    struct h_broker *a = qnode(n, "a", wait3);
    const char *q = h_dest("queue", "bounds");
    struct h_conn *c = h_client(a, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    struct h_conn *p = h_client(a, "1.2");
    h_publish(p, q, "one", true);
    cr_assert_str_eq(h_expect(c, "MESSAGE", 5000)->body, "one");
    const char *r = h_nats_request(n, "$JS.API.CONSUMER.LIST.STP_QUEUES", "{\"offset\":0}", 3000);
    cr_assert(r != NULL, "no answer to CONSUMER.LIST");
    cr_assert_eq(h_count(r, "\"name\":\"stpq_"), 1, "one consumer for one queue: %s", r);
    cr_assert(strstr(r, "\"inactive_threshold\":3600000000000") != NULL, "%s", r);
    cr_assert(strstr(r, "\"max_ack_pending\":10000000") != NULL, "%s", r);
    cr_assert(strstr(r, "\"ack_wait\":3000000000") != NULL, "%s", r);
    h_broker_stop_ok(a);
}
