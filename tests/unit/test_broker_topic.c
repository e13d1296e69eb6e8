/* Unit tests of topics (src/broker/topic.c: the owner's interest table, each
 * worker's local subscriber lists) through the net's ops table, without
 * sockets (broker_harness.h). */
#include "broker_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static void fini(void)
{
    th_teardown();
}

TestSuite(topic, .fini = fini);

Test(topic, every_subscriber_on_every_worker_gets_it)
{
    th_setup(2, NULL);
    struct th_conn *pub = th_connect(0), *a = th_connect(0), *b = th_connect(1);
    th_send(a, "SUBSCRIBE\nid:a\ndestination:/topic/t\n\n");
    th_send(b, "SUBSCRIBE\nid:b\ndestination:/topic/t\n\n");
    th_pump();
    th_send(pub, "SEND\ndestination:/topic/t\n\nhello");
    th_pump();
    struct stp_frame f = th_expect(a, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "hello");
    cr_assert_str_eq(th_header(&f, "subscription"), "a");
    f = th_expect(b, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "hello");
    cr_assert_str_eq(th_header(&f, "subscription"), "b");
    th_expect_none(a);
    th_expect_none(b);
    th_expect_none(pub);
}
