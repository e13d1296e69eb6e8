/*
 * 10_queue_exactly_once.c - 8 publishers and 4 consumers on one queue, across
 * workers: every message is delivered exactly once (client-individual acks,
 * prefetch-count credit), no consumer is starved (dispatch is round-robin among
 * consumers with credit, so shares follow how fast each one acks), and each publisher's
 * messages reach any one consumer in the order sent. A second run has one
 * consumer that never acks: it holds exactly its prefetch-count, then resets;
 * those messages come back marked redelivered and every message is still acked
 * exactly once.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(queue_exactly_once, .init = h_init, .fini = h_fini, .timeout = 40);

enum { NPUB = 8, NCON = 4, PER_PUB = 250, BATCH = 25, TOTAL = NPUB * PER_PUB };

struct tally {
    int acked[NPUB][PER_PUB];
    int delivered[NPUB][PER_PUB];
    int per_consumer[NCON];
    int last_seq[NCON][NPUB];
    int total_acked;
};

/* Drain what consumer i has now; ACK everything unless `hold` (then leave unacked).
 * The first read waits a few ms: with a non-blocking read alone, a consumer
 * whose MESSAGEs were still on the way (a slow broker: TSan) was skipped
 * round after round, and its share depended on that timing, not the broker. */
static int service(struct h_conn *c, int i, struct tally *t, bool hold)
{
    int n = 0;
    for (int guard = 0; guard < 1000; guard++) {
        struct h_frame *f = h_read(c, n == 0 && !hold ? 5 : 0);
        if (f == NULL)
            break;
        cr_assert_str_eq(f->cmd, "MESSAGE", "consumer %d got %s", i, h_show(f));
        int p = -1, s = -1;
        cr_assert(sscanf(f->body, "p%d-%d", &p, &s) == 2 && p >= 0 && p < NPUB && s >= 0 &&
                      s < PER_PUB,
                  "consumer %d: body %s", i, f->body);
        const char *red = h_hdr(f, "redelivered");
        bool is_red = red && strcmp(red, "true") == 0;
        cr_assert(t->acked[p][s] == 0, "consumer %d got %s again after it was acked (%s)", i,
                  f->body, h_show(f));
        cr_assert(t->delivered[p][s] == 0 || is_red,
                  "consumer %d got %s a second time without redelivered:true", i, f->body);
        if (!is_red) {
            cr_assert(s > t->last_seq[i][p], "consumer %d: publisher %d's %d after %d", i, p, s,
                      t->last_seq[i][p]);
            t->last_seq[i][p] = s;
        }
        t->delivered[p][s]++;
        t->per_consumer[i]++;
        n++;
        if (!hold) {
            h_ack(c, f, NULL, false);
            t->acked[p][s]++;
            t->total_acked++;
        }
    }
    return n;
}

static void run(bool reset_one)
{
    struct h_broker *b = h_broker_start_ex(3, true, NULL, NULL);
    const char *q = h_dest("queue", "eo");
    struct tally *t = calloc(1, sizeof *t);
    cr_assert(t != NULL);
    memset(t->last_seq, -1, sizeof t->last_seq);
    struct h_conn *cons[NCON], *pubs[NPUB];
    for (int i = 0; i < NCON; i++) {
        cons[i] = h_client(b, i % 2 ? "1.1" : "1.2");
        h_subscribe(cons[i], q, "eo", "client-individual", "prefetch-count:20\n");
    }
    for (int p = 0; p < NPUB; p++)
        pubs[p] = h_client(b, "1.2");
    char *buf = malloc(BATCH * 128);
    cr_assert(buf != NULL);
    for (int base = 0; base < PER_PUB; base += BATCH) {
        for (int p = 0; p < NPUB; p++) {
            size_t n = 0;
            for (int s = base; s < base + BATCH; s++) {
                n += (size_t)snprintf(buf + n, 128, "SEND\ndestination:%s\n%s\np%d-%d", q,
                                      s == PER_PUB - 1 ? "receipt:done\n" : "", p, s);
                buf[n++] = '\0';
            }
            h_send(pubs[p], buf, n);
        }
        /* In the reset run consumer 0 never acks: it fills its prefetch and holds. */
        for (int i = 0; i < NCON; i++)
            service(cons[i], i, t, reset_one && i == 0);
    }
    free(buf);
    for (int p = 0; p < NPUB; p++)
        h_expect_receipt(pubs[p], "done");
    if (reset_one) {
        /* Consumer 0 holds exactly its prefetch-count (20) unacked, then vanishes. */
        uint64_t until = h_now_ms() + 5000;
        while (t->per_consumer[0] < 20 && h_now_ms() < until) {
            if (service(cons[0], 0, t, true) == 0)
                h_sleep_ms(2);
        }
        cr_assert_eq(t->per_consumer[0], 20, "holding consumer got %d, prefetch-count is 20",
                     t->per_consumer[0]);
        h_expect_silence(cons[0], 100);
        h_reset(cons[0]);
        cons[0] = NULL;
    }
    uint64_t deadline = h_now_ms() + 20000;
    while (t->total_acked < TOTAL && h_now_ms() < deadline) {
        int got = 0;
        for (int i = 0; i < NCON; i++)
            if (cons[i] != NULL)
                got += service(cons[i], i, t, false);
        if (got == 0)
            h_sleep_ms(2);
    }
    int missing = 0, first_p = -1, first_s = -1;
    for (int p = 0; p < NPUB; p++)
        for (int s = 0; s < PER_PUB; s++) {
            cr_assert(t->acked[p][s] <= 1, "p%d-%d acked %d times", p, s, t->acked[p][s]);
            if (t->acked[p][s] == 0 && missing++ == 0) {
                first_p = p;
                first_s = s;
            }
        }
    cr_assert(missing == 0, "%d of %d messages never delivered (first: p%d-%d)", missing, TOTAL,
              first_p, first_s);
    for (int i = reset_one ? 1 : 0; i < NCON; i++)
        cr_assert(t->per_consumer[i] >= TOTAL / NCON / 10,
                  "consumer %d got only %d of %d messages (round-robin)", i, t->per_consumer[i],
                  TOTAL);
    if (reset_one) {
        int red = 0;
        for (int p = 0; p < NPUB; p++)
            for (int s = 0; s < PER_PUB; s++)
                red += t->delivered[p][s] > 1;
        cr_assert_eq(red, 20, "%d messages delivered twice, want the 20 the reset consumer held",
                     red);
    }
    for (int i = 0; i < NCON; i++)
        if (cons[i] != NULL)
            h_expect_silence(cons[i], i == 1 ? 200 : 1);
    free(t);
    h_broker_stop_ok(b);
}

Test(queue_exactly_once, eight_publishers_four_consumers)
{
    run(false);
}

Test(queue_exactly_once, consumer_reset_midway_redelivers)
{
    run(true);
}

/* Consumers that take messages and vanish without acking, over and over, while
 * publishers keep sending: every message still ends up acked exactly once by a
 * steady consumer, and every repeat delivery is marked redelivered. */
Test(queue_exactly_once, churning_consumers_lose_nothing)
{
    enum { N = 600 };
    struct h_broker *b = h_broker_start_ex(3, true, NULL, NULL);
    const char *q = h_dest("queue", "churn");
    struct h_conn *pub = h_client(b, "1.2"), *steady = h_client(b, "1.2");
    h_subscribe(steady, q, "s", "client-individual", "prefetch-count:10\n");
    static int acked[N], seen[N];
    memset(acked, 0, sizeof acked);
    memset(seen, 0, sizeof seen);
    int nacked = 0, sent = 0;
    for (int round = 0; round < 30; round++) {
        for (int i = 0; i < N / 30; i++, sent++)
            h_sendf(pub, "SEND\ndestination:%s\n\nm%d", q, sent);
        /* A greedy consumer grabs what it can and vanishes (reset or close). */
        struct h_conn *g = h_client(b, round % 2 ? "1.1" : "1.2");
        h_subscribe(g, q, "g", "client-individual", "prefetch-count:7\n");
        struct h_frame *f = h_read(g, 20);
        (void)f;
        if (round % 3 == 0)
            h_reset(g);
        else
            h_close(g);
        /* The steady consumer acks whatever it has. */
        for (int guard = 0; guard < 200; guard++) {
            struct h_frame *m = h_read(steady, 0);
            if (m == NULL)
                break;
            int k = -1;
            cr_assert(sscanf(m->body, "m%d", &k) == 1 && k >= 0 && k < N, "%s", h_show(m));
            const char *red = h_hdr(m, "redelivered");
            cr_assert(seen[k] == 0 || (red && strcmp(red, "true") == 0),
                      "m%d delivered again without redelivered:true", k);
            cr_assert(acked[k] == 0, "m%d delivered after it was acked", k);
            seen[k]++;
            h_ack(steady, m, NULL, false);
            acked[k]++;
            nacked++;
        }
    }
    uint64_t deadline = h_now_ms() + 10000;
    while (nacked < N && h_now_ms() < deadline) {
        struct h_frame *m = h_read(steady, 200);
        if (m == NULL)
            continue;
        int k = -1;
        cr_assert(sscanf(m->body, "m%d", &k) == 1 && k >= 0 && k < N, "%s", h_show(m));
        cr_assert(acked[k] == 0, "m%d delivered after it was acked", k);
        const char *red = h_hdr(m, "redelivered");
        cr_assert(seen[k] == 0 || (red && strcmp(red, "true") == 0),
                  "m%d delivered again without redelivered:true", k);
        seen[k]++;
        h_ack(steady, m, NULL, false);
        acked[k]++;
        nacked++;
    }
    int missing = 0;
    for (int k = 0; k < N; k++)
        missing += acked[k] != 1;
    cr_assert(missing == 0, "%d of %d messages never reached the steady consumer", missing, N);
    h_broker_stop_ok(b);
}
