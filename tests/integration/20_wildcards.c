/*
 * 20_wildcards.c - RabbitMQ-style topic patterns against the real broker:
 * `*` (one word), `#` (zero or more), topics owned by every worker, the
 * owner's order, unsubscribe, selectors, and hostile patterns.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(wildcards, .init = h_init, .fini = h_fini, .timeout = 60);

/* A word unique to this test process, so topics never collide. */
static const char *pfx(const char *tag)
{
    return h_fmt("%s%d", tag, (int)getpid());
}

/* Read n MESSAGEs on c: each of the n destinations once (any order: topics
 * with different owners travel different rings), subscription `sub`, body
 * equal to the destination. */
static void expect_each(struct h_conn *c, const char *sub, const char **dests, int n)
{
    char *seen = calloc((size_t)n, 1);
    cr_assert(seen != NULL);
    for (int i = 0; i < n; i++) {
        struct h_frame *f = h_expect(c, "MESSAGE", H_WAIT);
        cr_assert_str_eq(h_hdr(f, "subscription"), sub, "%s", h_show(f));
        const char *d = h_hdr(f, "destination");
        int j = 0;
        while (j < n && strcmp(dests[j], d) != 0)
            j++;
        cr_assert_lt(j, n, "unexpected %s", h_show(f));
        cr_assert(!seen[j], "%s came twice", d);
        cr_assert_str_eq(f->body, d);
        seen[j] = 1;
    }
    free(seen);
}

Test(wildcards, star_and_hash_on_every_worker)
{
    struct h_broker *b = h_broker_start_ex(3, true, NULL, NULL);
    const char *p = pfx("sh");
    struct h_conn *star = h_client(b, "1.2"), *hash = h_client(b, "1.1"),
                  *zero = h_client(b, "1.0"), *pub = h_client(b, "1.2");
    h_subscribe(star, h_fmt("/topic/%s.*.c", p), "star", NULL, "");
    h_subscribe(hash, h_fmt("/topic/%s.#", p), "hash", NULL, "");
    h_subscribe(zero, h_fmt("/topic/%s.#.c", p), "zero", NULL, "");
    /* 30 topics: they hash to all three workers. */
    enum { N = 30 };
    const char *dests[N];
    for (int i = 0; i < N; i++) {
        dests[i] = h_fmt("/topic/%s.%d.c", p, i);
        h_publish(pub, dests[i], dests[i], false);
    }
    h_publish(pub, h_fmt("/topic/%s", p), h_fmt("/topic/%s", p), false);
    h_publish(pub, h_fmt("/topic/%s.c", p), h_fmt("/topic/%s.c", p), false);
    h_publish(pub, h_fmt("/topic/%s.x.y.c", p), h_fmt("/topic/%s.x.y.c", p), true);
    expect_each(star, "star", dests, N);
    h_expect_silence(star, 200);

    const char *all[N + 3];
    memcpy(all, dests, sizeof(dests));
    all[N] = h_fmt("/topic/%s", p); /* `#` as zero words */
    all[N + 1] = h_fmt("/topic/%s.c", p);
    all[N + 2] = h_fmt("/topic/%s.x.y.c", p);
    expect_each(hash, "hash", all, N + 3);
    h_expect_silence(hash, 100);
    const char *zeros[N + 2]; /* every one but the bare prefix */
    memcpy(zeros, dests, sizeof(dests));
    zeros[N] = all[N + 1];
    zeros[N + 1] = all[N + 2];
    expect_each(zero, "zero", zeros, N + 2);
    h_expect_silence(zero, 100);
    h_broker_stop_ok(b);
}

/* Three publishers interleave on one topic: a pattern subscriber sees the
 * same order as an exact one (the owner's), each publisher's in its order. */
Test(wildcards, order_is_the_owners)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    const char *p = pfx("ord");
    const char *t = h_fmt("/topic/%s.x", p);
    struct h_conn *pat = h_client(b, "1.2"), *ex = h_client(b, "1.2");
    h_subscribe(pat, h_fmt("/topic/%s.*", p), "p", NULL, "");
    h_subscribe(ex, t, "e", NULL, "");
    struct h_conn *pubs[3];
    for (int i = 0; i < 3; i++)
        pubs[i] = h_client(b, "1.2");
    enum { PER = 200 };
    for (int k = 0; k < PER; k++)
        for (int i = 0; i < 3; i++)
            h_sendf(pubs[i], "SEND\ndestination:%s\n%s\n%d-%d", t,
                    k == PER - 1 ? "receipt:last\n" : "", i, k);
    for (int i = 0; i < 3; i++)
        h_expect_receipt(pubs[i], "last");
    int next[3] = {0};
    for (int k = 0; k < 3 * PER; k++) {
        struct h_frame *a = h_expect(pat, "MESSAGE", H_WAIT), *e = h_expect(ex, "MESSAGE", H_WAIT);
        cr_assert_str_eq(a->body, e->body, "message %d", k);
        cr_assert_str_eq(h_hdr(a, "destination"), t);
        int pi = 0, seq = 0;
        cr_assert_eq(sscanf(a->body, "%d-%d", &pi, &seq), 2);
        cr_assert_eq(seq, next[pi], "publisher %d: %d after %d", pi, seq, next[pi] - 1);
        next[pi]++;
    }
    h_broker_stop_ok(b);
}

Test(wildcards, unsubscribe_stops_and_resubscribe_works)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    const char *p = pfx("un");
    struct h_conn *s = h_client(b, "1.2"), *pub = h_client(b, "1.2");
    const char *pat = h_fmt("/topic/%s.#", p), *t = h_fmt("/topic/%s.a.b", p);
    h_subscribe(s, pat, "1", NULL, "");
    h_publish(pub, t, "one", true);
    h_expect_msg(s, "one");
    h_unsubscribe(s, "1");
    h_publish(pub, t, "none", true);
    h_expect_silence(s, 200);
    h_subscribe(s, pat, "2", NULL, "");
    h_publish(pub, t, "two", true);
    struct h_frame *f = h_expect_msg(s, "two");
    cr_assert_str_eq(h_hdr(f, "subscription"), "2");
    h_broker_stop_ok(b);
}

/* A connection with an exact and two pattern subscriptions that match gets
 * one MESSAGE per subscription; a selector filters a pattern's messages. */
Test(wildcards, one_per_subscription_and_selectors)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    const char *p = pfx("sel");
    const char *t = h_fmt("/topic/%s.a", p);
    struct h_conn *s = h_client(b, "1.2"), *pub = h_client(b, "1.2");
    h_subscribe(s, t, "exact", NULL, "");
    h_subscribe(s, h_fmt("/topic/%s.*", p), "star", NULL, "");
    h_subscribe(s, "/topic/#", "all", NULL, "selector:kind = 'x'\n");
    h_sendf(pub, "SEND\ndestination:%s\nkind:y\nreceipt:r\n\nfirst", t);
    h_expect_receipt(pub, "r");
    h_sendf(pub, "SEND\ndestination:%s\nkind:x\nreceipt:r2\n\nsecond", t);
    h_expect_receipt(pub, "r2");
    int got[3] = {0};
    for (int i = 0; i < 5; i++) {
        struct h_frame *f = h_expect(s, "MESSAGE", H_WAIT);
        const char *sub = h_hdr(f, "subscription");
        cr_assert_str_eq(h_hdr(f, "destination"), t);
        if (!strcmp(sub, "all"))
            cr_assert_str_eq(f->body, "second", "the selector let %s through", h_show(f));
        got[!strcmp(sub, "exact") ? 0 : !strcmp(sub, "star") ? 1 : 2]++;
    }
    cr_assert(got[0] == 2 && got[1] == 2 && got[2] == 1);
    h_expect_silence(s, 200);
    h_broker_stop_ok(b);
}

Test(wildcards, hostile_patterns)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, NULL);
    /* 129 words: refused. */
    struct h_conn *c = h_client(b, "1.2");
    char dest[1024] = "/topic/";
    for (int i = 0; i < 129; i++)
        strcat(dest, i ? ".*" : "*");
    h_sendf(c, "SUBSCRIBE\nid:1\ndestination:%s\nreceipt:r\n\n", dest);
    h_expect_error_msg(c, "r", "pattern too long");

    /* 64 `#` between `*`s against a topic of 500 words: answered at once,
     * not after an exponential search. */
    struct h_conn *s = h_client(b, "1.2"), *pub = h_client(b, "1.2");
    char hashes[512] = "/topic/";
    for (int i = 0; i < 127; i++)
        strcat(hashes, i % 2 ? "*." : "#.");
    strcat(hashes, "z");
    h_subscribe(s, hashes, "h", NULL, "");
    char topic[1100] = "/topic/";
    for (int i = 0; i < 500; i++)
        strcat(topic, "a.");
    strcat(topic, "z");
    h_publish(pub, topic, "deep", true);
    h_expect_msg(s, "deep");
    topic[strlen(topic) - 1] = 'y';
    h_publish(pub, topic, "no", true);
    h_expect_silence(s, 100);

    /* Empty words and `#` inside a word are literal words. */
    const char *p = pfx("lit");
    h_subscribe(s, h_fmt("/topic/%s..#b", p), "lit", NULL, "");
    h_publish(pub, h_fmt("/topic/%s..xb", p), "no", true);
    h_publish(pub, h_fmt("/topic/%s.#b", p), "no", true);
    h_publish(pub, h_fmt("/topic/%s..#b", p), "yes", true);
    struct h_frame *f = h_expect_msg(s, "yes");
    cr_assert_str_eq(h_hdr(f, "subscription"), "lit");
    h_expect_silence(s, 100);

    /* /queue/ names are never patterns. */
    struct h_conn *q = h_client(b, "1.2");
    h_subscribe(q, h_fmt("/queue/%s.*", p), "q", NULL, "");
    h_publish(pub, h_fmt("/queue/%s.a", p), "other queue", true);
    h_publish(pub, h_fmt("/queue/%s.*", p), "this queue", true);
    h_expect_msg(q, "this queue");
    h_expect_silence(q, 100);

    /* Churn: 20 connections each subscribe 40 patterns, half unsubscribe,
     * then all just go. The broker keeps serving. */
    for (int round = 0; round < 2; round++) {
        struct h_conn *cs[20];
        for (int i = 0; i < 20; i++) {
            cs[i] = h_client(b, "1.2");
            for (int k = 0; k < 40; k++)
                h_sendf(cs[i], "SUBSCRIBE\nid:%d\ndestination:/topic/churn.%d.%s\n\n", k, k % 7,
                        k % 2 ? "*" : "#");
            for (int k = 0; k < 40; k += 2)
                h_sendf(cs[i], "UNSUBSCRIBE\nid:%d\n\n", k);
        }
        for (int i = 0; i < 20; i++) {
            h_sendf(cs[i], "SEND\ndestination:/topic/churn.1.x\nreceipt:r\n\nc");
            h_expect_receipt(cs[i], "r");
            h_close(cs[i]);
        }
    }
    h_bystander_ok(b);
    h_publish(pub, topic, "still", true);
    cr_assert(h_broker_alive(b));
    h_broker_stop_ok(b);
}

/* A pattern subscription counts toward --max-destinations once. */
Test(wildcards, max_destinations)
{
    struct h_broker *b =
        h_broker_start_ex(2, true, (const char *const[]){"--max-destinations", "2", NULL}, NULL);
    const char *p = pfx("md");
    struct h_conn *a = h_client(b, "1.2"), *c = h_client(b, "1.2");
    h_subscribe(a, h_fmt("/topic/%s.*", p), "1", NULL, "");
    h_subscribe(a, h_fmt("/topic/%s.#", p), "2", NULL, "");
    h_sendf(c, "SUBSCRIBE\nid:3\ndestination:/topic/%s.x.*\nreceipt:r\n\n", p);
    h_expect_error_msg(c, NULL, "too many destinations");
    h_broker_stop_ok(b);
}
