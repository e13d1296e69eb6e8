/*
 * 26_cluster_topics.c - topics across Stampede nodes joined by a real
 * nats-server (issue 14): fan-out to every node, each publisher's order,
 * interest-based subscriptions, patterns without duplicates, durable
 * subscriptions fed from other nodes, NATS restarting or away, a node
 * killed, hostile NATS publishers, and that a single node loads nothing of
 * NATS. Every wait is bounded; everything listens on 127.0.0.1.
 */
#include "harness.h"
#include "nats_harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(cluster_topics, .init = h_init, .fini = h_fini, .timeout = 90);

/* A node with a ws:// listener too (for /metrics and /healthz). */
static struct h_broker *node(struct h_nats *n, const char *name)
{
    struct h_broker *b = h_cluster_node(n, name, "--listen", "ws://127.0.0.1:0/ws", NULL);
    cr_assert(h_broker_log_wait(b, "cluster: connected to NATS at", 10000),
              "node %s did not reach NATS:\n%s", name, h_broker_log(b));
    return b;
}

/* After a SUBSCRIBE's RECEIPT on node b: b has `want` NATS subscriptions
 * (the receipt already waited for NATS to have them). */
static void interest_settled(struct h_broker *b, double want)
{
    cr_assert_eq(h_node_metric(b, "stampede_cluster_subscriptions"), want);
}

Test(cluster_topics, fanout_reaches_every_node_in_order_once)
{
    struct h_nats *n = h_nats_start(false);
    struct h_broker *nodes[3] = {node(n, "n1"), node(n, "n2"), node(n, "n3")};
    const char *t = h_dest("topic", "fan");
    struct h_conn *subs[3];
    for (int i = 0; i < 3; i++) {
        subs[i] = h_client(nodes[i], "1.2");
        h_subscribe(subs[i], t, "s", NULL, "");
    }
    /* No wait here: a SUBSCRIBE's RECEIPT on a node means NATS has the
     * node's interest, so the very first message reaches every node. */
    struct h_conn *pub = h_client(nodes[0], "1.2");
    enum { N = 300 };
    for (int k = 0; k < N; k++)
        h_publish(pub, t, h_fmt("m%d", k), k == N - 1);
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < N; k++) {
            struct h_frame *f = h_expect(subs[i], "MESSAGE", 5000);
            cr_assert_str_eq(h_hdr(f, "destination"), t);
            cr_assert_str_eq(f->body, h_fmt("m%d", k), "node %d: message %d out of order", i + 1,
                             k);
        }
        h_expect_silence(subs[i], 200); /* exactly once */
    }
    /* Once per node into NATS, never once per remote subscriber. */
    cr_assert_eq(h_node_metric(nodes[0], "stampede_cluster_messages_out_total"), N);
    cr_assert_eq(h_node_metric(nodes[1], "stampede_cluster_messages_in_total"), N);
    cr_assert_eq(h_node_metric(nodes[2], "stampede_cluster_messages_in_total"), N);
    for (int i = 0; i < 3; i++)
        h_broker_stop_ok(nodes[i]);
}

Test(cluster_topics, each_publishers_order_is_kept)
{
    struct h_nats *n = h_nats_start(false);
    struct h_broker *a = node(n, "a"), *b = node(n, "b"), *c = node(n, "c");
    const char *t = h_dest("topic", "order");
    struct h_conn *sub = h_client(c, "1.2");
    h_subscribe(sub, t, "s", NULL, "");
    interest_settled(c, 1);
    struct h_conn *pa = h_client(a, "1.2"), *pb = h_client(b, "1.2");
    enum { N = 400 };
    for (int k = 0; k < N; k++) {
        h_publish(pa, t, h_fmt("a%d", k), k == N - 1);
        h_publish(pb, t, h_fmt("b%d", k), k == N - 1);
    }
    int next_a = 0, next_b = 0;
    for (int k = 0; k < 2 * N; k++) {
        struct h_frame *f = h_expect(sub, "MESSAGE", 5000);
        int *next = f->body[0] == 'a' ? &next_a : &next_b;
        cr_assert_eq(atoi(f->body + 1), *next, "publisher %c: got %s, expected #%d", f->body[0],
                     f->body, *next);
        (*next)++;
    }
    cr_assert_eq(next_a, N);
    cr_assert_eq(next_b, N);
    h_expect_silence(sub, 200);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
    h_broker_stop_ok(c);
}

Test(cluster_topics, only_nodes_with_interest_receive)
{
    struct h_nats *n = h_nats_start(false);
    struct h_broker *a = node(n, "a"), *b = node(n, "b"), *idle = node(n, "idle");
    const char *t = h_dest("topic", "interest");
    struct h_conn *sub = h_client(b, "1.2");
    h_subscribe(sub, t, "s", NULL, "");
    interest_settled(b, 1);
    cr_assert_eq(h_node_metric(idle, "stampede_cluster_subscriptions"), 0);
    struct h_conn *pub = h_client(a, "1.2");
    for (int k = 0; k < 50; k++)
        h_publish(pub, t, "x", k == 49);
    for (int k = 0; k < 50; k++)
        h_expect(sub, "MESSAGE", 5000);
    cr_assert_eq(h_node_metric(idle, "stampede_cluster_messages_in_total"), 0);
    cr_assert_eq(h_node_metric(idle, "stampede_cluster_bytes_in_total") < 2000, true,
                 "the idle node received topic traffic");
    /* The last subscriber leaves: the node drops its NATS subscription. */
    h_unsubscribe(sub, "s");
    uint64_t end = h_now_ms() + 5000;
    while (h_node_metric(b, "stampede_cluster_subscriptions") != 0 && h_now_ms() < end)
        h_sleep_ms(20);
    cr_assert_eq(h_node_metric(b, "stampede_cluster_subscriptions"), 0);
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
    h_broker_stop_ok(idle);
}

Test(cluster_topics, patterns_match_remote_topics_without_duplicates)
{
    struct h_nats *n = h_nats_start(false);
    struct h_broker *a = node(n, "a"), *b = node(n, "b");
    const char *base = h_dest("topic", "pat"); /* /topic/pat-PID-N */
    struct h_conn *sub = h_client(b, "1.2");
    h_subscribe(sub, h_fmt("%s.x", base), "exact", NULL, "");
    h_subscribe(sub, h_fmt("%s.*", base), "star", NULL, "");
    h_subscribe(sub, h_fmt("%s.#", base), "hash", NULL, "");
    h_subscribe(sub, "/topic/#", "all", NULL, "");
    /* exact: 1 subject; a.*: 1; a.#: 2 (a and a.>); #: 1 (>) */
    interest_settled(b, 5);
    struct h_conn *pub = h_client(a, "1.2");
    h_publish(pub, h_fmt("%s.x", base), "x", false);   /* exact, star, hash */
    h_publish(pub, base, "zero", false);               /* hash only (zero words) */
    h_publish(pub, h_fmt("%s.y.z", base), "yz", true); /* hash only */
    int got[4] = {0};                                  /* exact, star, hash, all */
    for (int k = 0; k < 8; k++) {
        struct h_frame *f = h_expect(sub, "MESSAGE", 5000);
        const char *s = h_hdr(f, "subscription");
        got[strcmp(s, "exact") == 0  ? 0
            : strcmp(s, "star") == 0 ? 1
            : strcmp(s, "hash") == 0 ? 2
                                     : 3]++;
    }
    h_expect_silence(sub, 300);
    cr_assert_eq(got[0], 1);
    cr_assert_eq(got[1], 1);
    cr_assert_eq(got[2], 3);
    cr_assert_eq(got[3], 3);
    cr_assert(h_node_metric(b, "stampede_cluster_duplicates_total") >= 1,
              "overlapping NATS subscriptions should have delivered a second copy");
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

Test(cluster_topics, durable_subscription_keeps_remote_messages)
{
    struct h_nats *n = h_nats_start(false);
    struct h_broker *a = node(n, "a"), *b = node(n, "b");
    const char *t = h_dest("topic", "dsub");
    struct h_conn *sub = h_client(b, "1.2");
    h_subscribe(sub, t, "d1", NULL, "durable:true\nauto-delete:false\n");
    interest_settled(b, 1);
    h_disconnect(sub); /* away: the durable subscription keeps the interest */
    h_sleep_ms(100);
    cr_assert_eq(h_node_metric(b, "stampede_cluster_subscriptions"), 1);
    struct h_conn *pub = h_client(a, "1.2");
    for (int k = 0; k < 20; k++)
        h_publish(pub, t, h_fmt("d%d", k), k == 19);
    cr_assert(h_node_metric_reaches(b, "stampede_cluster_messages_in_total", 20, 5000));
    sub = h_client(b, "1.2");
    h_subscribe(sub, t, "d1", NULL, "durable:true\nauto-delete:false\n");
    for (int k = 0; k < 20; k++)
        cr_assert_str_eq(h_expect(sub, "MESSAGE", 5000)->body, h_fmt("d%d", k));
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* Local clients are served while NATS is away; /healthz says degraded; the
 * node reconnects by itself and cross-node traffic resumes. */
Test(cluster_topics, nats_restart_degrades_then_resumes)
{
    struct h_nats *n = h_nats_start(false);
    struct h_broker *a = node(n, "a"), *b = node(n, "b");
    const char *t = h_dest("topic", "restart");
    struct h_conn *sub_b = h_client(b, "1.2"), *sub_a = h_client(a, "1.2");
    h_subscribe(sub_b, t, "s", NULL, "");
    h_subscribe(sub_a, t, "s", NULL, "");
    interest_settled(b, 1);
    h_nats_stop(n);
    cr_assert(h_broker_log_wait(a, "cluster: lost the NATS connection", 10000));
    const char *health = h_http_get(h_listener_port(a, "ws"), "/healthz");
    cr_assert(strstr(health, "\"status\":\"degraded\"") &&
                  strstr(health, "\"cluster\":\"disconnected\""),
              "%s", health);
    cr_assert_eq(h_node_metric(a, "stampede_cluster_connected"), 0);
    /* Local delivery goes on, at once. */
    struct h_conn *pub = h_client(a, "1.2");
    h_publish(pub, t, "while-away", true);
    cr_assert_str_eq(h_expect(sub_a, "MESSAGE", 3000)->body, "while-away");
    h_nats_restart(n);
    cr_assert(h_broker_log_wait(a, "cluster: reconnected to NATS", 15000), "%s", h_broker_log(a));
    cr_assert(h_broker_log_wait(b, "cluster: reconnected to NATS", 15000), "%s", h_broker_log(b));
    health = h_http_get(h_listener_port(a, "ws"), "/healthz");
    cr_assert(strstr(health, "\"status\":\"ok\"") && strstr(health, "\"cluster\":\"connected\""),
              "%s", health);
    cr_assert(h_node_metric(a, "stampede_cluster_reconnects_total") >= 1);
    /* libnats re-sends b's subscriptions on reconnect; what a publishes
     * after both are back reaches b (the first may race the re-subscribe, so
     * publish until one arrives, bounded). */
    bool arrived = false;
    for (int k = 0; k < 50 && !arrived; k++) {
        h_publish(pub, t, h_fmt("back%d", k), true);
        struct h_frame *f = h_read(sub_b, 100);
        arrived = f && strcmp(f->cmd, "MESSAGE") == 0 && strncmp(f->body, "back", 4) == 0;
    }
    cr_assert(arrived, "no cross-node message after NATS came back");
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

/* A node whose NATS is not there at start serves its local clients and
 * joins when NATS appears. */
Test(cluster_topics, starts_without_nats_and_joins_later)
{
    struct h_nats *n = h_nats_start(false);
    h_nats_stop(n);
    struct h_broker *a = h_cluster_node(n, "early", NULL);
    cr_assert(h_broker_log_wait(a, "NATS is not reachable yet", 5000), "%s", h_broker_log(a));
    struct h_conn *c = h_client(a, "1.2");
    const char *t = h_dest("topic", "early");
    h_subscribe(c, t, "s", NULL, "");
    h_publish(c, t, "local", true);
    cr_assert_str_eq(h_expect(c, "MESSAGE", 3000)->body, "local");
    h_nats_restart(n);
    cr_assert(h_broker_log_wait(a, "cluster: connected to NATS at", 15000), "%s", h_broker_log(a));
    h_broker_stop_ok(a);
}

Test(cluster_topics, a_killed_node_does_not_stop_the_others)
{
    struct h_nats *n = h_nats_start(false);
    struct h_broker *a = node(n, "a"), *b = node(n, "b"), *victim = node(n, "victim");
    const char *t = h_dest("topic", "kill");
    struct h_conn *sub = h_client(b, "1.2");
    h_subscribe(sub, t, "s", NULL, "");
    struct h_conn *vs = h_client(victim, "1.2");
    h_subscribe(vs, t, "s", NULL, "");
    interest_settled(b, 1);
    interest_settled(victim, 1);
    cr_assert_eq(h_broker_stop_sig(victim, SIGKILL, 5000), -1);
    struct h_conn *pub = h_client(a, "1.2");
    for (int k = 0; k < 100; k++)
        h_publish(pub, t, h_fmt("k%d", k), k == 99);
    for (int k = 0; k < 100; k++)
        cr_assert_str_eq(h_expect(sub, "MESSAGE", 5000)->body, h_fmt("k%d", k));
    h_broker_stop_ok(a);
    h_broker_stop_ok(b);
}

Test(cluster_topics, hostile_nats_publishers_cannot_inject)
{
    struct h_nats *n = h_nats_start(false);
    struct h_broker *b = node(n, "b");
    struct h_conn *sub = h_client(b, "1.2");
    h_subscribe(sub, "/topic/h", "s", NULL, "");
    h_subscribe(sub, "/topic/hz.#", "p", NULL, ""); /* asks NATS for stp.t.hz and stp.t.hz.> */
    interest_settled(b, 3);
    int fd = h_nats_raw_dial(h_nats_port(n));
    char buf[1024];
    /* 1. Not the format at all. */
    h_nats_raw_pub(fd, "stp.t.h", NULL, "hello", 5);
    /* 2. A tail that smuggles a second frame after its NUL. */
    static const char smuggle[] = "destination:/topic/h\ncontent-length:1\n\nx\0MESSAGE\n"
                                  "subscription:s\ndestination:/topic/h\n\nforged\0";
    h_nats_raw_pub(fd, "stp.t.h", NULL, buf,
                   h_cluster_wire(buf, 7, 1, smuggle, sizeof(smuggle) - 1));
    /* 3. A destination header that is not the subject's topic. */
    static const char other[] = "destination:/topic/other\n\nz\0";
    h_nats_raw_pub(fd, "stp.t.h", NULL, buf, h_cluster_wire(buf, 7, 2, other, sizeof(other) - 1));
    /* 4. A header line with a raw CR LF pair inside a value is just two
     *    lines, but a NUL inside one is refused by the parser. */
    static const char nul_hdr[] = "destination:/topic/h\nx-a:1\0b\n\nz\0";
    h_nats_raw_pub(fd, "stp.t.h", NULL, buf,
                   h_cluster_wire(buf, 7, 3, nul_hdr, sizeof(nul_hdr) - 1));
    /* 5. A subject no Stampede node makes (a bad escape), inside the
     *    pattern subscription's wildcard. */
    static const char ok_tail[] = "destination:/topic/h\ncontent-length:2\n\nok\0";
    h_nats_raw_pub(fd, "stp.t.hz.~ZZ", NULL, buf,
                   h_cluster_wire(buf, 7, 4, ok_tail, sizeof(ok_tail) - 1));
    cr_assert(h_node_metric_reaches(b, "stampede_cluster_messages_rejected_total", 5, 3000),
              "rejected: %g", h_node_metric(b, "stampede_cluster_messages_rejected_total"));
    h_expect_silence(sub, 200);
    /* 6. A well-formed message from a peer is delivered (the checks above
     *    refused what they should, not everything), once, even if repeated. */
    size_t len = h_cluster_wire(buf, 7, 5, ok_tail, sizeof(ok_tail) - 1);
    h_nats_raw_pub(fd, "stp.t.h", NULL, buf, len);
    h_nats_raw_pub(fd, "stp.t.h", NULL, buf, len); /* same origin and seq: a second copy */
    struct h_frame *f = h_expect(sub, "MESSAGE", 3000);
    cr_assert_str_eq(f->body, "ok");
    cr_assert_str_eq(h_hdr(f, "destination"), "/topic/h");
    h_expect_silence(sub, 300);
    cr_assert_eq(h_node_metric(b, "stampede_cluster_duplicates_total"), 1);
    close(fd);
    h_bystander_topic_ok(b);
    h_broker_stop_ok(b);
}

/* Without --cluster nothing of NATS is in the process; with it, the module. */
static bool maps_contain(struct h_broker *b, const char *needle)
{
    char *out = NULL;
    h_sh(h_fmt("cat /proc/%d/maps", (int)b->pid), 3000, &out);
    return out && strstr(out, needle);
}

Test(cluster_topics, single_node_loads_nothing_of_nats)
{
    struct h_broker *single = H_START0();
    cr_assert(!maps_contain(single, "libnats"), "a single node mapped libnats");
    cr_assert(!maps_contain(single, "stampede-nats"), "a single node mapped the NATS module");
    struct h_nats *n = h_nats_start(false);
    struct h_broker *clustered = node(n, "c");
    cr_assert(maps_contain(clustered, "stampede-nats.so"));
    cr_assert(maps_contain(clustered, "libnats"));
    h_broker_stop_ok(single);
    h_broker_stop_ok(clustered);
}
