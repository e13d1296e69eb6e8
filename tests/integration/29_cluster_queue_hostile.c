/*
 * 29_cluster_queue_hostile.c - what a hostile NATS client can do to cluster
 * queues (issue 14): junk published into the queues' JetStream stream is
 * leased like a message, refused by the node's checks and terminated in
 * JetStream (never delivered, never redelivered); forged answers on a
 * node's inbox (publish acks, pull statuses, a "leased" message that did not
 * come from JetStream) change nothing. The node keeps serving throughout.
 *
 * Real nats-server with JetStream and real Stampede nodes on loopback.
 */
#include "harness.h"
#include "nats_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(cluster_queue_hostile, .init = h_init, .fini = h_fini, .timeout = 90);

static struct h_broker *node(struct h_nats *n, const char *name)
{
    struct h_broker *b = h_cluster_node(n, name, "--listen", "ws://127.0.0.1:0/ws",
                                        "--cluster-ack-wait", "1s", NULL);
    cr_assert(h_broker_log_wait(b, "cluster: connected to NATS at", 10000), "%s", h_broker_log(b));
    return b;
}

Test(cluster_queue_hostile, junk_in_the_stream_is_terminated_not_delivered)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *b = node(n, "b");
    struct h_conn *sub = h_client(b, "1.2");
    h_subscribe(sub, "/queue/hq", "s", NULL, "");
    struct h_conn *pub = h_client(b, "1.2");
    h_publish(pub, "/queue/hq", "first", true); /* the stream exists once receipted */
    cr_assert_str_eq(h_expect(sub, "MESSAGE", 5000)->body, "first");

    /* Straight into JetStream (the stream takes every stp.q.> subject). */
    int fd = h_nats_raw_dial(h_nats_port(n));
    char buf[1024];
    h_nats_raw_pub(fd, "stp.q.hq", NULL, "hello", 5); /* 1. not the format */
    static const char smuggle[] = "destination:/queue/hq\ncontent-length:1\n\nx\0MESSAGE\n"
                                  "subscription:s\ndestination:/queue/hq\n\nforged\0";
    h_nats_raw_pub(fd, "stp.q.hq", NULL, buf,
                   h_cluster_wire(buf, 9, 1, smuggle, sizeof(smuggle) - 1)); /* 2. two frames */
    static const char other[] = "destination:/queue/other\n\nz\0";
    h_nats_raw_pub(fd, "stp.q.hq", NULL, buf,
                   h_cluster_wire(buf, 9, 2, other, sizeof(other) - 1)); /* 3. another queue */
    static const char topic[] = "destination:/topic/hq\n\nz\0";
    h_nats_raw_pub(fd, "stp.q.hq", NULL, buf,
                   h_cluster_wire(buf, 9, 3, topic, sizeof(topic) - 1)); /* 4. a topic */
    close(fd);
    cr_assert(h_node_metric_reaches(b, "stampede_cluster_messages_rejected_total", 4, 5000),
              "rejected: %g", h_node_metric(b, "stampede_cluster_messages_rejected_total"));

    /* A real message after them is delivered, and nothing else is. */
    h_publish(pub, "/queue/hq", "after", true);
    struct h_frame *f = h_expect(sub, "MESSAGE", 5000);
    cr_assert_str_eq(f->body, "after");
    cr_assert_str_eq(h_hdr(f, "destination"), "/queue/hq");
    /* Terminated, not NAKed: past two ack waits none comes back. */
    h_expect_silence(sub, 2500);
    cr_assert_eq(h_node_metric(b, "stampede_cluster_messages_rejected_total"), 4);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* The node's inbox prefix "_STP.<id>", read off a pull request it sends. */
static void inbox_of(struct h_nats *n, struct h_broker *b, char *out, size_t cap, int *fd)
{
    *fd = h_nats_raw_dial(h_nats_port(n));
    h_nats_raw_sub(*fd, "$JS.API.CONSUMER.MSG.NEXT.>", 1);
    h_nats_raw_pub(*fd, "stp.ping", NULL, "", 0); /* the SUB is in place after the PONG */
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, "/queue/watched", "s", NULL, ""); /* the node pulls for it */
    char subject[256], reply[256];
    cr_assert(h_nats_raw_next_msg(*fd, subject, reply, 5000), "no pull request seen");
    cr_assert(strncmp(reply, "_STP.", 5) == 0, "pull reply %s", reply);
    const char *dot = strchr(reply + 5, '.');
    cr_assert(dot != NULL);
    snprintf(out, cap, "%.*s", (int)(dot - reply), reply);
    h_disconnect(c);
}

Test(cluster_queue_hostile, forged_inbox_answers_change_nothing)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *b = node(n, "b");
    char inbox[64];
    int fd;
    inbox_of(n, b, inbox, sizeof(inbox), &fd);
    const char *const junk[] = {
        "a.0.1",        "a.0.x",         "a.9999.1", "a.0",
        "f.0.x",        "f.0.stp.q.~ZZ", "zz",       "a.99999999999999999999.1",
        "f.1.stp.q.hq", "f.0.stp.t.x"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        h_nats_raw_pub(fd, h_fmt("%s.%s", inbox, junk[i]), NULL, "{\"stream\":\"x\",\"seq\":1}",
                       23);
    /* A "leased" message that did not come from JetStream: on the inbox,
     * with an ack reply, a valid message of a queue with a consumer. */
    struct h_conn *sub = h_client(b, "1.2");
    h_subscribe(sub, "/queue/hq", "s", NULL, "");
    static const char tail[] = "destination:/queue/hq\ncontent-length:6\n\nforged\0";
    char buf[256];
    h_nats_raw_pub(fd, h_fmt("%s.f.0.stp.q.hq", inbox), "$JS.ACK.STP_QUEUES.c.1.1.1.1.0", buf,
                   h_cluster_wire(buf, 9, 1, tail, sizeof(tail) - 1));
    close(fd);
    /* The node still stores and leases, and only what it was sent. */
    struct h_conn *pub = h_client(b, "1.2");
    h_publish(pub, "/queue/hq", "real", true);
    cr_assert_str_eq(h_expect(sub, "MESSAGE", 5000)->body, "real");
    h_expect_silence(sub, 500);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* A queue name within --max-destination-length whose NATS subject would be
 * too long (every byte escaped three times): the SEND gets ERROR "message
 * not stored" naming the reason, nothing reaches JetStream, and the node
 * goes on serving queues. The same SEND with a bad frame right behind it
 * (the session is closing when the refusal comes) gets no RECEIPT either. */
Test(cluster_queue_hostile, a_queue_name_too_long_for_nats_is_refused)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *b = node(n, "b");
    static char name[1000]; /* within the default 1 KiB */
    memcpy(name, "/queue/", 7);
    memset(name + 7, '.', sizeof(name) - 8); /* each '.' is "~2E" in a subject */
    name[sizeof(name) - 1] = '\0';
    struct h_conn *pub = h_client(b, "1.2");
    h_sendf(pub, "SEND\ndestination:%s\nreceipt:long\n\nx", name);
    struct h_frame *f = h_expect(pub, "ERROR", 5000);
    cr_assert_str_eq(h_hdr(f, "message"), "message not stored");
    cr_assert_str_eq(h_hdr(f, "receipt-id"), "long");
    cr_assert(strstr(f->body, "too long for a NATS subject") != NULL, "%s", f->body);
    cr_assert_eq(h_node_metric(b, "stampede_cluster_queue_messages_out_total"), 0);
    cr_assert_eq(h_node_metric(b, "stampede_cluster_queue_messages_refused_total"), 1);

    struct h_conn *bad = h_client(b, "1.2");
    h_sendf(bad, "SEND\ndestination:%s\nreceipt:long2\n\nx", name);
    h_send(bad, "bad\n\n", 6); /* not a command: ERROR, then closed */
    struct h_frame *g = h_expect(bad, "ERROR", 5000);
    cr_assert(h_hdr(g, "receipt-id") == NULL || strcmp(h_hdr(g, "receipt-id"), "long2") == 0, "%s",
              h_show(g));
    struct h_frame *more = NULL;
    cr_assert(h_wait_closed(bad, 3000, &more), "not closed: %s", more ? h_show(more) : "open");
    cr_assert(more == NULL || strcmp(more->cmd, "RECEIPT") != 0,
              "a RECEIPT for a message not stored: %s", h_show(more));
    cr_assert(h_node_metric_reaches(b, "stampede_cluster_queue_messages_refused_total", 2, 3000));
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}
