/* Unit tests of queues (src/broker/queue.c) through the net's ops table,
 * without sockets (broker_harness.h): ack modes, requeue order, credit and
 * bounds, on one worker and with the queue owned by another worker. */
#include "broker_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static void fini(void)
{
    th_teardown();
}

TestSuite(queue, .fini = fini);

static void publish(struct th_conn *t, const char *dest, const char *body)
{
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "SEND\ndestination:%s\n\n", dest);
    th_send_body(t, hdr, body, strlen(body));
}

Test(queue, auto_ack_delivers_in_order_once)
{
    th_setup(1, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s1\ndestination:/queue/a\n\n");
    th_pump();
    for (int i = 0; i < 5; i++) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        publish(pub, "/queue/a", body);
    }
    th_pump();
    for (int i = 0; i < 5; i++) {
        struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        cr_assert_str_eq(th_body(&f), body);
        cr_assert_str_eq(th_header(&f, "subscription"), "s1");
        cr_assert_null(th_header(&f, "ack"), "auto ack carries no ack id");
    }
    th_expect_none(sub);
    th_expect_none(pub);
}

/* The queue's owner is the other worker: SUBSCRIBE, SEND and the credit
 * (written-marks) all cross the mailboxes. */
Test(queue, owner_on_another_worker)
{
    th_setup(2, NULL);
    const char *dest = NULL;
    char name[32];
    for (int i = 0; i < 100 && !dest; i++) {
        snprintf(name, sizeof(name), "/queue/x%d", i);
        if (stp_owner_of(th_worker(0), name, strlen(name)) == 1)
            dest = name;
    }
    cr_assert_not_null(dest);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    char frame[128];
    snprintf(frame, sizeof(frame), "SUBSCRIBE\nid:1\ndestination:%s\nreceipt:r1\n\n", dest);
    th_send(sub, frame);
    th_turn(0); /* the subscription is posted to worker 1, not answered yet */
    th_expect_none(sub);
    th_pump();
    struct stp_frame r = th_expect(sub, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&r, "receipt-id"), "r1");
    for (int i = 0; i < 3000; i++) /* past the owner's out-window of 2048 */
        publish(pub, dest, "x");
    th_pump();
    cr_assert_eq(th_pending_frames(sub), 3000);
}
