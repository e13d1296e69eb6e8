/* Unit tests of topic patterns: the trie alone (src/broker/pattern.c), and
 * pattern subscriptions through real workers (topic_pattern.c, topic.c,
 * session_sub.c) driven without sockets (broker_harness.h). Two workers at
 * least, so patterns match topics owned by other workers. */
#include "auth/auth.h"
#include "broker/pattern.h"
#include "broker_harness.h"
#include "stampede/counter.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- the trie alone --- */

struct hits {
    unsigned n[16];
    unsigned total;
};

static bool count_hit(void *ctx, void *payload)
{
    struct hits *h = ctx;
    h->n[(uintptr_t)payload]++;
    h->total++;
    return false;
}

static void add(struct stp_ptrie *t, const char *pat, uintptr_t id)
{
    void **slot = stp_ptrie_add(t, pat, strlen(pat));
    cr_assert_not_null(slot);
    *slot = (void *)id;
}

/* Does `pat` (alone in a trie) match `topic`? */
static bool matches(const char *pat, const char *topic)
{
    struct stp_ptrie t = STP_PTRIE_INIT;
    add(&t, pat, 1);
    struct hits h = {0};
    cr_assert_eq(stp_ptrie_match(&t, topic, strlen(topic), count_hit, &h), 0);
    stp_ptrie_free(&t, NULL, NULL);
    cr_assert(h.total <= 1, "%s reported %u times for %s", pat, h.total, topic);
    return h.total == 1;
}

Test(ptrie, rabbitmq_semantics)
{
    static const struct {
        const char *pat, *topic;
        bool match;
    } cases[] = {
        {"a.*.c", "a.b.c", true},  {"a.*.c", "a.c", false}, {"a.*.c", "a.b.b.c", false},
        {"a.*.c", "a..c", true}, /* `*` takes an empty word */
        {"a.#", "a", true},      /* `#` as zero words */
        {"a.#", "a.b", true},      {"a.#", "a.b.c", true},  {"a.#", "ab", false},
        {"a.#", "b.a", false},     {"#", "x", true},        {"#", "x.y.z", true},
        {"#", ".", true},          {"#.c", "c", true},      {"#.c", "a.b.c", true},
        {"#.c", "a.b.c.d", false}, {"a.#.c", "a.c", true},  {"a.#.c", "a.b.d.c", true},
        {"a.#.c", "a.b", false},   {"#.#", "a", true},      {"*.#", "a", true},
        {"*.*.#", "a", false},     {"#.*", "a.b.c", true},  {"*", "a", true},
        {"*", "a.b", false},       {"a.#b", "a.#b", true}, /* a `#` inside a word is a literal */
        {"a.#b", "a.xb", false},   {"a.#b", "a.b", false},  {"a*.b", "ax.b", false},
        {"a.*", "a.*", true}, /* a SEND to a pattern's name is a literal topic */
        {"a..b", "a..b", true},    {"a..b", "a.b", false},  {"a.*.#.*", "a.b.c", true},
        {"a.*.#.*", "a.b", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(matches(cases[i].pat, cases[i].topic), cases[i].match, "%s vs %s: want %d",
                     cases[i].pat, cases[i].topic, cases[i].match);
}

Test(ptrie, is_pattern)
{
    size_t words;
    cr_assert(stp_pattern_is("a.*.c", 5, &words));
    cr_assert_eq(words, 3);
    cr_assert(stp_pattern_is("#", 1, &words));
    cr_assert_eq(words, 1);
    cr_assert(!stp_pattern_is("a.#b", 4, &words));
    cr_assert(!stp_pattern_is("a..b", 4, &words));
    cr_assert_eq(words, 3);
    cr_assert(!stp_pattern_is("a*", 2, NULL));
    cr_assert(stp_pattern_is("a..*", 4, &words));
    cr_assert_eq(words, 3);
}

/* Every matching pattern is reported once, however many paths reach it. */
Test(ptrie, each_pattern_once)
{
    struct stp_ptrie t = STP_PTRIE_INIT;
    add(&t, "#", 1);
    add(&t, "a.#", 2);
    add(&t, "#.c", 3);
    add(&t, "#.*.#", 4);
    add(&t, "a.b.c", 5);
    add(&t, "*.#.*", 6);
    add(&t, "x.#", 7);
    add(&t, "#.#.#.d", 8);
    struct hits h = {0};
    cr_assert_eq(stp_ptrie_match(&t, "a.b.c", 5, count_hit, &h), 0);
    for (int i = 1; i <= 6; i++)
        cr_assert_eq(h.n[i], 1, "pattern %d reported %u times", i, h.n[i]);
    cr_assert_eq(h.n[7] + h.n[8], 0);
    cr_assert_eq(t.count, 8);
    stp_ptrie_free(&t, NULL, NULL);
}

/* Topics whose first word no pattern starts with are rejected up front;
 * words that share a bucket still match exactly. */
Test(ptrie, first_word_filter)
{
    struct stp_ptrie t = STP_PTRIE_INIT;
    add(&t, "ab.*", 1); /* "ab" and "ba" share nothing; "ab" and "ab" do */
    add(&t, "a.b", 2);
    struct hits h = {0};
    cr_assert_eq(stp_ptrie_match(&t, "ab.x", 4, count_hit, &h), 0);
    cr_assert_eq(stp_ptrie_match(&t, "ab", 2, count_hit, &h), 0);
    cr_assert_eq(stp_ptrie_match(&t, "aab.x", 5, count_hit, &h), 0);
    cr_assert_eq(stp_ptrie_match(&t, "a.b", 3, count_hit, &h), 0);
    cr_assert_eq(stp_ptrie_match(&t, "a.c", 3, count_hit, &h), 0);
    cr_assert_eq(h.n[1], 1);
    cr_assert_eq(h.n[2], 1);
    cr_assert_eq(h.total, 2);
    add(&t, "*.x", 3); /* a root wildcard: every topic is walked */
    cr_assert_eq(stp_ptrie_match(&t, "zz.x", 4, count_hit, &h), 0);
    cr_assert_eq(h.n[3], 1);
    stp_ptrie_free(&t, NULL, NULL);
}

/* A run of `#` is one `#`: the same terminal, and the same topics. */
Test(ptrie, hash_runs_are_one_pattern)
{
    struct stp_ptrie t = STP_PTRIE_INIT;
    void **a = stp_ptrie_add(&t, "a.#.#.#", 7), **b = stp_ptrie_add(&t, "a.#", 3);
    cr_assert_eq(a, b);
    cr_assert_eq(t.count, 1);
    cr_assert_eq(stp_ptrie_find(&t, "a.#.#", 5), a);
    cr_assert_not_null(stp_ptrie_add(&t, "a.#.*.#", 7));
    cr_assert_eq(t.count, 2);
    stp_ptrie_del(&t, "a.#.#", 5);
    cr_assert_null(stp_ptrie_find(&t, "a.#", 3));
    cr_assert_eq(t.count, 1);
    stp_ptrie_free(&t, NULL, NULL);
    cr_assert(matches("#.#.#", "x"));
    cr_assert(matches("a.#.#.b", "a.b"));
    cr_assert(matches("a.#.#.b", "a.x.y.b"));
    cr_assert(!matches("a.#.#.b", "a.x.y"));
}

/* Twenty `#` against a hundred words: visited at most once per (node,
 * position), this returns at once; tried path by path it would never end. */
Test(ptrie, many_hashes_not_exponential)
{
    struct stp_ptrie t = STP_PTRIE_INIT;
    char pat[256] = "", topic[256] = "";
    for (int i = 0; i < 20; i++)
        strcat(pat, "#.");
    strcat(pat, "z");
    add(&t, pat, 1);
    for (int i = 0; i < 100; i++)
        strcat(topic, i ? ".a" : "a");
    struct hits h = {0};
    cr_assert_eq(stp_ptrie_match(&t, topic, strlen(topic), count_hit, &h), 0);
    cr_assert_eq(h.total, 0);
    strcat(topic, ".z");
    cr_assert_eq(stp_ptrie_match(&t, topic, strlen(topic), count_hit, &h), 0);
    cr_assert_eq(h.total, 1);
    stp_ptrie_free(&t, NULL, NULL);
}

static bool stop_at_first(void *ctx, void *payload)
{
    count_hit(ctx, payload);
    return true;
}

Test(ptrie, stop_early_and_delete_prunes)
{
    struct stp_ptrie t = STP_PTRIE_INIT;
    const char *pats[] = {"a.*", "a.#", "#", "a.b", "a.*.c", "b.#.c"};
    for (uintptr_t i = 0; i < 6; i++)
        add(&t, pats[i], i + 1);
    struct hits h = {0};
    cr_assert_eq(stp_ptrie_match(&t, "a.b", 3, stop_at_first, &h), 0);
    cr_assert_eq(h.total, 1);
    cr_assert_not_null(stp_ptrie_find(&t, "a.*.c", 5));
    cr_assert_null(stp_ptrie_find(&t, "a.*.d", 5));
    cr_assert_null(stp_ptrie_find(&t, "a", 1)); /* a node, not a pattern */
    stp_ptrie_del(&t, "a.*.c", 5);
    cr_assert_null(stp_ptrie_find(&t, "a.*.c", 5));
    cr_assert_not_null(stp_ptrie_find(&t, "a.*", 3)); /* its prefix stays */
    stp_ptrie_del(&t, "nothing.here", 12);
    for (int i = 0; i < 6; i++)
        stp_ptrie_del(&t, pats[i], strlen(pats[i]));
    cr_assert_eq(t.count, 0);
    cr_assert_null(t.root, "every node is freed with the last pattern");
    for (int i = 0; i < 256; i++)
        cr_assert_eq(t.first_words[i], 0, "first-word bucket %d still counted", i);
    stp_ptrie_free(&t, NULL, NULL);
}

/* --- through the broker --- */

static char users_path[64], acl_path[64];

static void fini(void)
{
    th_teardown();
    if (users_path[0])
        unlink(users_path);
    if (acl_path[0])
        unlink(acl_path);
    users_path[0] = acl_path[0] = '\0';
}

TestSuite(wildcard, .fini = fini);

static void publish(struct th_conn *t, const char *dest, const char *body)
{
    char hdr[2048];
    snprintf(hdr, sizeof(hdr), "SEND\ndestination:%s\n\n", dest);
    th_send_body(t, hdr, body, strlen(body));
}

static void subscribe(struct th_conn *t, const char *id, const char *dest)
{
    th_sendf(t, "SUBSCRIBE\nid:%s\ndestination:%s\nreceipt:sub-%s\n\n", id, dest, id);
    th_pump();
    struct stp_frame r = th_expect(t, STP_CMD_RECEIPT);
    char want[64];
    snprintf(want, sizeof(want), "sub-%s", id);
    cr_assert_str_eq(th_header(&r, "receipt-id"), want);
}

static void unsubscribe(struct th_conn *t, const char *id)
{
    th_sendf(t, "UNSUBSCRIBE\nid:%s\nreceipt:unsub-%s\n\n", id, id);
    th_pump();
    th_expect(t, STP_CMD_RECEIPT);
}

/* The next frame of t is a MESSAGE of subscription `sub`, sent to `dest`,
 * with body `body`. */
static void expect_msg(struct th_conn *t, const char *sub, const char *dest, const char *body)
{
    struct stp_frame f = th_expect(t, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_header(&f, "subscription"), sub);
    cr_assert_str_eq(th_header(&f, "destination"), dest);
    cr_assert_str_eq(th_body(&f), body);
}

/* The next n frames of t are MESSAGEs of subscription `sub`, one for each
 * of dests[] (body: the destination), in any order: topics with different
 * owners come through different rings. */
static void expect_each(struct th_conn *t, const char *sub, const char *const *dests, int n)
{
    unsigned seen = 0;
    for (int i = 0; i < n; i++) {
        struct stp_frame f = th_expect(t, STP_CMD_MESSAGE);
        cr_assert_str_eq(th_header(&f, "subscription"), sub);
        const char *d = th_header(&f, "destination");
        int j = 0;
        while (j < n && strcmp(dests[j], d) != 0)
            j++;
        cr_assert_lt(j, n, "unexpected destination %s", d);
        cr_assert_str_eq(th_body(&f), dests[j]);
        cr_assert_eq(seen & (1u << j), 0, "%s came twice", d);
        seen |= 1u << j;
    }
}

static void expect_error(struct th_conn *t, const char *message)
{
    struct stp_frame e = th_expect(t, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&e, "message"), message);
}

/* No pattern is left at any owner or on any worker. */
static void assert_no_patterns(unsigned nworkers)
{
    for (unsigned i = 0; i < nworkers; i++) {
        cr_assert_eq(th_worker(i)->patterns.count, 0, "worker %u still owns patterns", i);
        cr_assert_null(th_worker(i)->patterns.root);
        cr_assert_eq(th_worker(i)->local_patterns.count, 0, "worker %u keeps local patterns", i);
        cr_assert_null(th_worker(i)->local_patterns.root);
    }
}

static size_t ndests(void)
{
    return atomic_load(&th_broker()->ndests);
}

Test(wildcard, star_gets_topics_of_every_owner)
{
    th_setup(3, NULL);
    struct th_conn *pub = th_connect(2), *a = th_connect(0), *b = th_connect(1);
    subscribe(a, "p", "/topic/x.*");
    subscribe(b, "q", "/topic/x.*");
    for (unsigned owner = 0; owner < 3; owner++) {
        const char *t = th_owned_by(owner, "/topic/x.", owner);
        publish(pub, t, "hi");
        th_pump();
        expect_msg(a, "p", t, "hi");
        expect_msg(b, "q", t, "hi");
    }
    publish(pub, "/topic/x.y.z", "two words too many");
    publish(pub, "/topic/x", "one too few");
    publish(pub, "/topic/y.x", "another prefix");
    th_pump();
    th_expect_none(a);
    th_expect_none(b);
    th_expect_none(pub);
}

Test(wildcard, hash_takes_zero_or_more_words)
{
    th_setup(2, NULL);
    struct th_conn *pub = th_connect(1), *a = th_connect(0), *all = th_connect(1);
    subscribe(a, "h", "/topic/a.#");
    subscribe(all, "all", "/topic/#");
    const char *topics[] = {"/topic/a", "/topic/a.b", "/topic/a.b.c", "/topic/a..x", "/topic/ab"};
    for (int i = 0; i < 5; i++)
        publish(pub, topics[i], topics[i]);
    th_pump();
    expect_each(a, "h", topics, 4);
    th_expect_none(a);
    expect_each(all, "all", topics, 5);
    th_expect_none(all);
}

/* One MESSAGE per matching subscription, as RabbitMQ does; one per
 * subscription whatever the number of patterns that lead to it. */
Test(wildcard, one_message_per_subscription)
{
    th_setup(2, NULL);
    const char *t = th_owned_by(1, "/topic/a.", 0);
    struct th_conn *pub = th_connect(1), *c = th_connect(0), *d = th_connect(0);
    subscribe(c, "exact", t);
    subscribe(c, "star", "/topic/a.*");
    subscribe(c, "hash", "/topic/#.#");
    subscribe(d, "star", "/topic/a.*"); /* the same pattern, another connection */
    publish(pub, t, "m");
    th_pump();
    const char *seen[3] = {0};
    for (int i = 0; i < 3; i++) {
        struct stp_frame f = th_expect(c, STP_CMD_MESSAGE);
        static char ids[3][16];
        snprintf(ids[i], sizeof(ids[i]), "%s", th_header(&f, "subscription"));
        seen[i] = ids[i];
        cr_assert_str_eq(th_header(&f, "destination"), t);
    }
    th_expect_none(c);
    int have = 0;
    for (int i = 0; i < 3; i++)
        have |= (strcmp(seen[i], "exact") == 0 ? 1 : 0) | (strcmp(seen[i], "star") == 0 ? 2 : 0) |
                (strcmp(seen[i], "hash") == 0 ? 4 : 0);
    cr_assert_eq(have, 7);
    expect_msg(d, "star", t, "m");
    th_expect_none(d);
    /* The owner sent worker 0 one delivery: 4 deliveries in all. */
    uint64_t delivered = 0;
    for (unsigned i = 0; i < 2; i++)
        delivered += STP_STAT_GET(th_worker(i)->stats.msgs_delivered);
    cr_assert_eq(delivered, 4);
}

/* Every message of a topic reaches a pattern subscriber in the owner's
 * order, whichever connections publish; exact subscribers see the same. */
Test(wildcard, order_is_the_owners)
{
    th_setup(2, NULL);
    const char *t = th_owned_by(0, "/topic/o.", 0);
    struct th_conn *p1 = th_connect(0), *p2 = th_connect(1);
    struct th_conn *pat = th_connect(1), *ex = th_connect(0);
    subscribe(pat, "p", "/topic/o.#");
    subscribe(ex, "e", t);
    char body[32];
    for (int i = 0; i < 100; i++) {
        snprintf(body, sizeof(body), "%d", i);
        publish(i % 2 ? p1 : p2, t, body);
        if (i % 7 == 0)
            th_turn(i % 2);
    }
    th_pump();
    char order_pat[100][8], order_ex[100][8];
    for (int i = 0; i < 100; i++) {
        struct stp_frame f = th_expect(pat, STP_CMD_MESSAGE);
        snprintf(order_pat[i], 8, "%s", th_body(&f));
        f = th_expect(ex, STP_CMD_MESSAGE);
        snprintf(order_ex[i], 8, "%s", th_body(&f));
        cr_assert_str_eq(order_pat[i], order_ex[i], "message %d differs", i);
    }
    /* Each publisher's own messages in its order. */
    int last[2] = {-1, -1};
    for (int i = 0; i < 100; i++) {
        int v = atoi(order_pat[i]);
        cr_assert_gt(v, last[v % 2]);
        last[v % 2] = v;
    }
}

Test(wildcard, selector_on_a_pattern)
{
    th_setup(2, NULL);
    struct th_conn *pub = th_connect(0), *s = th_connect(1);
    th_send(s, "SUBSCRIBE\nid:s\ndestination:/topic/px.*\nselector:color = 'red'\nreceipt:r\n\n");
    th_pump();
    th_expect(s, STP_CMD_RECEIPT);
    th_send(pub, "SEND\ndestination:/topic/px.a\ncolor:blue\n\nno");
    th_send(pub, "SEND\ndestination:/topic/px.b\ncolor:red\n\nyes");
    th_send(pub, "SEND\ndestination:/topic/px.c\n\nno header");
    th_pump();
    expect_msg(s, "s", "/topic/px.b", "yes");
    th_expect_none(s);
}

Test(wildcard, unsubscribe_and_disconnect_remove_interest_everywhere)
{
    th_setup(2, NULL);
    struct th_conn *pub = th_connect(1), *a = th_connect(0), *b = th_connect(0);
    subscribe(a, "1", "/topic/u.*");
    subscribe(b, "1", "/topic/u.*");
    subscribe(b, "2", "/topic/u.#");
    for (unsigned i = 0; i < 2; i++)
        cr_assert_eq(th_worker(i)->patterns.count, 2);
    cr_assert_eq(th_worker(0)->local_patterns.count, 2);
    unsubscribe(a, "1");
    unsubscribe(b, "2");
    publish(pub, "/topic/u.v", "after");
    th_pump();
    th_expect_none(a);
    expect_msg(b, "1", "/topic/u.v", "after");
    cr_assert_eq(th_worker(1)->patterns.count, 1);
    th_send(b, "DISCONNECT\nreceipt:bye\n\n");
    th_pump();
    th_expect(b, STP_CMD_RECEIPT);
    th_pump();
    assert_no_patterns(2);
    cr_assert_eq(ndests(), 0);
    publish(pub, "/topic/u.v", "nobody");
    th_pump();
    th_expect_none(a);
}

/* Many connections on both workers subscribing and dropping patterns in a
 * pseudo-random order: nothing is left anywhere (leaks: the ASan build). */
Test(wildcard, churn_leaves_nothing)
{
    th_setup(2, NULL);
    enum { NCONN = 24, NPAT = 6, ROUNDS = 300 };
    const char *pats[NPAT] = {"/topic/c.*",   "/topic/c.#",     "/topic/#",
                              "/topic/*.*.*", "/topic/c.#.#.z", "/topic/*.x.#"};
    struct th_conn *conns[NCONN];
    bool on[NCONN][NPAT] = {{false}};
    for (int i = 0; i < NCONN; i++)
        conns[i] = th_connect(i % 2);
    struct th_conn *pub = th_connect(0);
    unsigned seed = 12345;
    for (int r = 0; r < ROUNDS; r++) {
        seed = seed * 1103515245 + 12345;
        int ci = (seed >> 8) % NCONN, pi = (seed >> 16) % NPAT;
        if (!on[ci][pi])
            th_sendf(conns[ci], "SUBSCRIBE\nid:%d\ndestination:%s\n\n", pi, pats[pi]);
        else
            th_sendf(conns[ci], "UNSUBSCRIBE\nid:%d\n\n", pi);
        on[ci][pi] = !on[ci][pi];
        if (r % 10 == 0) {
            publish(pub, "/topic/c.x.z", "churn");
            th_pump();
        }
    }
    th_pump();
    /* Every worker holds the same patterns, each as an owner. */
    size_t want = 0;
    for (int pi = 0; pi < NPAT; pi++) {
        bool any = false;
        for (int ci = 0; ci < NCONN; ci++)
            any |= on[ci][pi];
        want += any;
    }
    cr_assert_eq(th_worker(0)->patterns.count, want);
    cr_assert_eq(th_worker(1)->patterns.count, want);
    cr_assert_eq(ndests(), want, "one destination per pattern in the broker");
    /* Half the connections leave by DISCONNECT, half just go. */
    for (int i = 0; i < NCONN; i++) {
        if (i % 2)
            th_send(conns[i], "DISCONNECT\n\n");
        else
            stp_conn_close(conns[i]->c, STP_CLOSE_NOW);
        th_pump();
    }
    th_pump();
    assert_no_patterns(2);
    cr_assert_eq(ndests(), 0);
}

Test(wildcard, pattern_word_bound)
{
    th_setup(2, NULL);
    struct th_conn *ok = th_connect(0), *bad = th_connect(1), *pub = th_connect(0);
    char dest[1024] = "/topic/";
    for (int i = 0; i < STP_PATTERN_MAX_WORDS; i++)
        strcat(dest, i ? ".*" : "*");
    subscribe(ok, "128", dest);
    char topic[1024] = "/topic/";
    for (int i = 0; i < STP_PATTERN_MAX_WORDS; i++)
        strcat(topic, i ? ".w" : "w");
    publish(pub, topic, "deep");
    th_pump();
    expect_msg(ok, "128", topic, "deep");
    strcat(dest, ".#");
    th_sendf(bad, "SUBSCRIBE\nid:129\ndestination:%s\n\n", dest);
    th_pump();
    expect_error(bad, "pattern too long");
    th_expect_none(bad);
    /* A literal topic of as many words is not a pattern: no word bound. */
    strcat(topic, ".w.w");
    subscribe(ok, "lit", topic);
}

Test(wildcard, literals_that_look_like_patterns)
{
    th_setup(2, NULL);
    struct th_conn *pub = th_connect(0), *s = th_connect(1);
    subscribe(s, "hb", "/topic/a.#b"); /* `#b`: a word, not a wildcard */
    subscribe(s, "empty", "/topic/e..*");
    subscribe(s, "exact", "/topic/a.b");
    publish(pub, "/topic/a.xb", "no");
    publish(pub, "/topic/a.b", "exact only");
    th_pump();
    expect_msg(s, "exact", "/topic/a.b", "exact only");
    publish(pub, "/topic/a.#b", "literal");
    th_pump();
    expect_msg(s, "hb", "/topic/a.#b", "literal");
    publish(pub, "/topic/e..q", "empty word");
    publish(pub, "/topic/e.x.q", "no");
    th_pump();
    expect_msg(s, "empty", "/topic/e..q", "empty word");
    th_expect_none(s);
    /* A SEND to a pattern's name publishes to that literal topic. */
    subscribe(s, "star", "/topic/a.*");
    publish(pub, "/topic/a.*", "to the name");
    th_pump();
    expect_msg(s, "star", "/topic/a.*", "to the name");
    th_expect_none(s);
}

Test(wildcard, queue_names_are_never_patterns)
{
    th_setup(2, NULL);
    struct th_conn *pub = th_connect(0), *s = th_connect(1);
    subscribe(s, "q", "/queue/q.*");
    publish(pub, "/queue/q.a", "another queue");
    publish(pub, "/queue/q.*", "this queue");
    th_pump();
    expect_msg(s, "q", "/queue/q.*", "this queue");
    th_expect_none(s);
    assert_no_patterns(2);
}

/* A pattern counts once toward --max-destinations (at its home worker),
 * not once per worker that keeps a copy. */
Test(wildcard, max_destinations_counts_a_pattern_once)
{
    static const char *const two[] = {"--max-destinations", "2", NULL};
    th_setup(2, two);
    struct th_conn *a = th_connect(0), *b = th_connect(1), *c = th_connect(1), *pub = th_connect(0);
    subscribe(a, "1", "/topic/m.*");
    subscribe(b, "1", "/topic/m.*");
    cr_assert_eq(ndests(), 1);
    subscribe(a, "2", "/topic/n.#");
    cr_assert_eq(ndests(), 2);
    subscribe(b, "2", "/topic/n.#.#"); /* the same pattern, spelled otherwise */
    cr_assert_eq(ndests(), 2);
    th_send(c, "SUBSCRIBE\nid:3\ndestination:/topic/o.*\nreceipt:r\n\n");
    th_pump();
    expect_error(c, "too many destinations");
    th_expect_none(c);
    th_pump();
    cr_assert_eq(ndests(), 2);
    for (unsigned i = 0; i < 2; i++)
        cr_assert_eq(th_worker(i)->patterns.count, 2, "the refused pattern's copies are gone");
    publish(pub, "/topic/m.x", "still");
    th_pump();
    expect_msg(a, "1", "/topic/m.x", "still");
    expect_msg(b, "1", "/topic/m.x", "still");
}

/* A message no one wants is counted as dropped at the owner, patterns or
 * not; a pattern on another prefix does not take it. */
Test(wildcard, unmatched_is_dropped)
{
    th_setup(2, NULL);
    struct th_conn *pub = th_connect(0), *s = th_connect(1);
    subscribe(s, "1", "/topic/idle.1.*");
    const char *t = th_owned_by(1, "/topic/busy.", 0);
    uint64_t before = STP_STAT_GET(th_worker(1)->stats.msgs_dropped);
    publish(pub, t, "x");
    th_pump();
    th_expect_none(s);
    cr_assert_eq(STP_STAT_GET(th_worker(1)->stats.msgs_dropped), before + 1);
}

/* --- access control: read permission on the pattern string --- */

static void write_temp(char *path, size_t n, const char *text)
{
    snprintf(path, n, "/tmp/stampede-wild-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static struct th_conn *login(unsigned worker, const char *user, const char *pass)
{
    struct th_conn *t = th_open(worker);
    th_sendf(t, "CONNECT\naccept-version:1.2\nhost:test\nlogin:%s\npasscode:%s\n\n", user, pass);
    cr_assert(th_await(t, 5000), "no answer to CONNECT");
    th_expect(t, STP_CMD_CONNECTED);
    return t;
}

Test(wildcard, acl_checks_the_pattern_string)
{
    char a[STP_PASSWORD_HASH_MAX], b[STP_PASSWORD_HASH_MAX], text[512];
    cr_assert_eq(stp_password_hash("wonderland", 10, a), 0);
    cr_assert_eq(stp_password_hash("builder", 7, b), 0);
    snprintf(text, sizeof(text), "alice:%s\nbob:%s\n", a, b);
    write_temp(users_path, sizeof(users_path), text);
    write_temp(acl_path, sizeof(acl_path), "alice read /topic/alerts.*\nbob write /topic/**\n");
    const char *flags[] = {"--users-file", users_path, "--acl-file", acl_path, NULL};
    th_setup(2, flags);
    struct th_conn *alice = login(0, "alice", "wonderland"), *bob = login(1, "bob", "builder");
    /* `/topic/alerts.*` (ACL: any bytes but '/') matches the string
     * `/topic/alerts.#`: allowed, and it gets every word count. */
    subscribe(alice, "a", "/topic/alerts.#");
    publish(bob, "/topic/alerts.db.disk", "full");
    th_pump();
    expect_msg(alice, "a", "/topic/alerts.db.disk", "full");
    /* `/topic/#` is not under alerts: refused like any destination. */
    th_send(alice, "SUBSCRIBE\nid:all\ndestination:/topic/#\n\n");
    th_pump();
    th_expect(alice, STP_CMD_ERROR);
    th_pump();
    cr_assert(alice->torn_down);
    assert_no_patterns(2);
}
