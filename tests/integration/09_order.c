/*
 * 09_order.c - order on one topic across workers: 3 publishers send
 * concurrently, 6 subscribers (on whichever workers the kernel picked) must all
 * see one and the same order, and each publisher's messages in the order sent.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(order, .init = h_init, .fini = h_fini, .timeout = 30);

enum { NPUB = 3, NSUB = 6, PER_PUB = 400, BATCH = 20 };

static void publish_interleaved(struct h_conn **pubs, const char *t)
{
    char *buf = malloc(BATCH * 256);
    cr_assert(buf != NULL);
    for (int base = 0; base < PER_PUB; base += BATCH) {
        for (int p = 0; p < NPUB; p++) {
            size_t n = 0;
            for (int i = base; i < base + BATCH; i++) {
                bool last = i == PER_PUB - 1;
                n += (size_t)snprintf(buf + n, 256,
                                      "SEND\ndestination:%s\npub:%d\nseq:%d\n%s\np%d-%d", t, p, i,
                                      last ? "receipt:last\n" : "", p, i);
                buf[n++] = '\0';
            }
            /* One write per batch per publisher: the broker sees them concurrently. */
            h_send(pubs[p], buf, n);
        }
    }
    free(buf);
    for (int p = 0; p < NPUB; p++)
        h_expect_receipt(pubs[p], "last");
}

static void check_order(int workers, const char *tag)
{
    struct h_broker *b = h_broker_start_ex(workers, true, NULL, NULL);
    const char *t = h_dest("topic", tag);
    const char *vers[] = {"1.0", "1.1", "1.2"};
    struct h_conn *subs[NSUB], *pubs[NPUB];
    for (int s = 0; s < NSUB; s++) {
        subs[s] = h_client(b, vers[s % 3]);
        h_subscribe(subs[s], t, h_fmt("s%d", s), NULL, NULL);
    }
    for (int p = 0; p < NPUB; p++)
        pubs[p] = h_client(b, vers[(p + 1) % 3]);
    publish_interleaved(pubs, t);
    static char order[NSUB][NPUB * PER_PUB][16];
    for (int s = 0; s < NSUB; s++) {
        int next[NPUB] = {0};
        for (int k = 0; k < NPUB * PER_PUB; k++) {
            struct h_frame *f = h_read(subs[s], 5000);
            cr_assert(f != NULL, "subscriber %d: got %d of %d messages", s, k, NPUB * PER_PUB);
            cr_assert_str_eq(f->cmd, "MESSAGE", "subscriber %d got %s", s, h_show(f));
            int p = -1, seq = -1;
            cr_assert(sscanf(f->body, "p%d-%d", &p, &seq) == 2 && p >= 0 && p < NPUB,
                      "subscriber %d: body %s", s, f->body);
            cr_assert_eq(seq, next[p],
                         "subscriber %d: publisher %d's message %d arrived when %d was due", s, p,
                         seq, next[p]);
            next[p]++;
            snprintf(order[s][k], sizeof order[s][k], "%s", f->body);
            if (s > 0)
                cr_assert_str_eq(order[s][k], order[0][k],
                                 "subscriber %d saw %s at position %d, subscriber 0 saw %s", s,
                                 order[s][k], k, order[0][k]);
        }
    }
    /* The three publishers' streams really did interleave somewhere (or the test
     * would prove nothing about cross-connection order). */
    int switches = 0;
    for (int k = 1; k < NPUB * PER_PUB; k++)
        switches += order[0][k][1] != order[0][k - 1][1];
    cr_assert(switches >= 2, "publishers never interleaved (%d switches)", switches);
    for (int s = 0; s < NSUB; s++)
        h_expect_silence(subs[s], s == 0 ? 100 : 1);
    h_broker_stop_ok(b);
}

Test(order, three_publishers_six_subscribers_two_workers)
{
    check_order(2, "ord2");
}

Test(order, three_publishers_six_subscribers_four_workers)
{
    check_order(4, "ord4");
}
