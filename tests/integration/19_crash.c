/*
 * 19_crash.c - issue 12's crash test: a real broker with --data-dir is killed
 * with SIGKILL at random moments, over and over, while publishers send
 * persistent messages with a receipt each and consumers ack each message
 * (client-individual) with a receipt; it restarts on the same data dir each
 * time and the clients dial again and carry on.
 *
 * Publishers: NP connections; publisher p's message number s goes to queue
 * s % NQ with headers x-producer:p, x-seq:s and x-attempt:a (and a body
 * saying the same). At most WINDOW messages wait for their RECEIPT. After a
 * crash a publisher sends again, with the same s and the next attempt a,
 * every message that never got its RECEIPT (at-least-once publishing), then
 * goes on with new ones. (p, s, a) names one SEND, so one broker message:
 * message-ids change across restarts and cannot.
 *
 * Consumers: one per queue (so a queue's order is what one connection
 * reads), ack:client-individual, prefetch-count PREFETCH, an ACK with a
 * receipt for every MESSAGE. An ACK counts as durable once its RECEIPT is read.
 *
 * After a kill the test still reads what the dead broker's sockets hold (the
 * broker sent it). Then a final run without a kill: publishers resend what is
 * left (no new messages), consumers drain the queues; then the checks:
 *   - every (p, s, a) that got a RECEIPT was delivered at least once;
 *   - no (p, s, a) was delivered after the RECEIPT of an ACK of it;
 *   - per (queue, producer), first deliveries of messages sent only once come
 *     in increasing s (a message sent again may come later);
 *   - a (p, s, a) delivered again always carried redelivered:true;
 * then one more kill -9 and restart: nothing comes back (all acked with
 * receipts). A summary line gives the counts.
 *
 * Each kill comes 50-400 ms after the clients of that run have connected and
 * subscribed; the delays come from a seeded generator ($CRASH_SEED, default
 * below; the interleaving of frames still depends on timing). $CRASH_KILLS
 * kills, default 24, at most 29 (the harness keeps 32 brokers). Single-
 * threaded: non-blocking sockets, one poll() loop. Loopback only, every wait
 * bounded, a total deadline of DEADLINE_MS.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    NP = 3,             /* publishers */
    NQ = 3,             /* queues, one consumer each */
    WINDOW = 8,         /* SENDs waiting for a RECEIPT, per publisher */
    PREFETCH = 64,      /* consumer's prefetch-count */
    RATE = 400,         /* new messages per second per publisher, at most */
    MAXSEQ = 12000,     /* per publisher */
    MAXATT = 40,        /* attempts per (p, s): 1 + at most one per kill */
    WORKERS = 2,        /* broker workers */
    DEFAULT_KILLS = 24, /* kills at random moments (at least 20) */
    MAX_KILLS = 29,
    DEADLINE_MS = 300000,
    DRAIN_MS = 30000, /* the final run's drain */
    MAX_REPORTS = 25, /* failures described one by one */
};

#define DEFAULT_SEED 20261203u

/* ---- data dir ---- */

static char data_dir[128];

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static void crash_fini(void)
{
    h_fini();
    if (data_dir[0] && getenv("CRASH_KEEP_DIR") == NULL)
        nftw(data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    data_dir[0] = '\0';
}

TestSuite(crash, .init = h_init, .fini = crash_fini, .timeout = 400);

/* ---- seeded randomness (xorshift64*) ---- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 33) % n;
}

/* ---- what was sent, receipted, delivered, acked ---- */

struct mstate {
    uint8_t attempts;        /* SENDs of (p, s) so far */
    uint64_t receipted;      /* bit a: (p, s, a) got its RECEIPT */
    uint32_t ack_ev[MAXATT]; /* event number of the ACK's RECEIPT; 0: none */
    uint16_t delivered[MAXATT];
};

struct delivery {
    uint8_t p, q, a, redelivered;
    int s;
    uint32_t ev;
};

static struct mstate *ms; /* [NP][MAXSEQ] */
static struct delivery *dlog;
static size_t ndlog, dlog_cap;
static uint32_t evno; /* frames handled so far (event clock) */

static struct mstate *st(int p, int s)
{
    return &ms[(size_t)p * MAXSEQ + (size_t)s];
}

/* Failures: counted, the first MAX_REPORTS described. */
static unsigned nfail;

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (nfail++ < MAX_REPORTS)                                                                 \
            cr_log_error(__VA_ARGS__);                                                             \
    } while (0)

/* ---- clients ---- */

struct pub {
    int id;
    struct h_conn *c;
    int next_seq;
    /* Sent and not receipted (or to send again), in s order; inflight[i]:
     * sent on the current connection. */
    int pending[WINDOW];
    bool inflight[WINDOW];
    int npending;
    unsigned sent_cycle; /* new messages this cycle (rate) */
};

struct cons {
    int q;
    struct h_conn *c;
    unsigned acks_waiting; /* ACKs sent on c whose RECEIPT has not come */
};

static struct pub pubs[NP];
static struct cons conss[NQ];
static const char *queues[NQ];
static struct h_broker *broker;
static bool killed;                           /* the current broker was killed on purpose */
static unsigned long long n_sends, n_resends; /* SEND frames, of which sent again */

static void pub_send(struct pub *p, int i)
{
    int s = p->pending[i];
    struct mstate *m = st(p->id, s);
    cr_assert(m->attempts < MAXATT, "publisher %d seq %d: more than %d attempts", p->id, s, MAXATT);
    int a = m->attempts++;
    const char *frame = h_fmt("SEND\ndestination:%s\npersistent:true\nx-producer:%d\nx-seq:%d\n"
                              "x-attempt:%d\nreceipt:p%d.%d.%d\n\np=%d s=%d a=%d",
                              queues[s % NQ], p->id, s, a, p->id, s, a, p->id, s, a);
    p->inflight[i] = true;
    n_sends++;
    n_resends += a > 0;
    (void)h_send_raw(p->c, frame, strlen(frame) + 1); /* a dead broker shows on read */
}

/* Resend what waits, then new messages while the window and rate allow. */
static void pub_pump(struct pub *p, uint64_t cycle_ms, bool new_ones)
{
    if (p->c == NULL || p->c->closed)
        return;
    for (int i = 0; i < p->npending; i++)
        if (!p->inflight[i])
            pub_send(p, i);
    while (new_ones && p->npending < WINDOW && p->next_seq < MAXSEQ &&
           p->sent_cycle < cycle_ms * RATE / 1000) {
        p->pending[p->npending] = p->next_seq++;
        p->inflight[p->npending] = false;
        pub_send(p, p->npending++);
        p->sent_cycle++;
    }
}

static void on_pub_frame(struct pub *p, struct h_frame *f)
{
    int pp, s, a;
    const char *rid = h_hdr(f, "receipt-id");
    if (strcmp(f->cmd, "RECEIPT") != 0 || rid == NULL ||
        sscanf(rid, "p%d.%d.%d", &pp, &s, &a) != 3 || pp != p->id || s < 0 || s >= MAXSEQ) {
        FAIL("publisher %d: unexpected %s", p->id, h_show(f));
        return;
    }
    struct mstate *m = st(pp, s);
    if (a != m->attempts - 1)
        FAIL("publisher %d: RECEIPT for attempt %d of seq %d, the last was %d", p->id, a, s,
             m->attempts - 1);
    m->receipted |= 1ull << a;
    for (int i = 0; i < p->npending; i++) {
        if (p->pending[i] == s) {
            memmove(&p->pending[i], &p->pending[i + 1],
                    (size_t)(p->npending - i - 1) * sizeof(int));
            memmove(&p->inflight[i], &p->inflight[i + 1],
                    (size_t)(p->npending - i - 1) * sizeof(bool));
            p->npending--;
            return;
        }
    }
    FAIL("publisher %d: RECEIPT %s for a message not waiting for one", p->id, rid);
}

static int hdr_int(const struct h_frame *f, const char *name)
{
    const char *v = h_hdr(f, name);
    if (v == NULL || v[0] == '\0')
        return -1;
    char *end;
    long n = strtol(v, &end, 10);
    return *end == '\0' && n >= 0 && n < 1000000 ? (int)n : -1;
}

static void on_cons_frame(struct cons *k, struct h_frame *f)
{
    if (strcmp(f->cmd, "RECEIPT") == 0) {
        int p, s, a;
        const char *rid = h_hdr(f, "receipt-id");
        if (rid == NULL || sscanf(rid, "k%d.%d.%d", &p, &s, &a) != 3 || p < 0 || p >= NP || s < 0 ||
            s >= MAXSEQ || a < 0 || a >= MAXATT) {
            FAIL("consumer %d: unexpected %s", k->q, h_show(f));
            return;
        }
        if (k->acks_waiting > 0)
            k->acks_waiting--;
        if (st(p, s)->ack_ev[a] == 0)
            st(p, s)->ack_ev[a] = evno;
        return;
    }
    if (strcmp(f->cmd, "MESSAGE") != 0) {
        FAIL("consumer %d: unexpected %s", k->q, h_show(f));
        return;
    }
    int p = hdr_int(f, "x-producer"), s = hdr_int(f, "x-seq"), a = hdr_int(f, "x-attempt");
    const char *ack = h_hdr(f, "ack"), *dest = h_hdr(f, "destination");
    if (p < 0 || p >= NP || s < 0 || s >= MAXSEQ || a < 0 || a >= MAXATT || ack == NULL) {
        FAIL("consumer %d: not one of ours: %s", k->q, h_show(f));
        return;
    }
    const char *body = h_fmt("p=%d s=%d a=%d", p, s, a);
    if (f->body_len != strlen(body) || memcmp(f->body, body, f->body_len) != 0)
        FAIL("consumer %d: body does not match the headers: %s", k->q, h_show(f));
    if (dest == NULL || strcmp(dest, queues[k->q]) != 0 || s % NQ != k->q)
        FAIL("consumer %d: message for another queue: %s", k->q, h_show(f));
    if (a >= st(p, s)->attempts)
        FAIL("consumer %d: attempt %d of p%d s%d was never sent: %s", k->q, a, p, s, h_show(f));
    const char *r = h_hdr(f, "redelivered");
    if (ndlog == dlog_cap) {
        dlog_cap = dlog_cap ? dlog_cap * 2 : 16384;
        dlog = realloc(dlog, dlog_cap * sizeof *dlog);
        cr_assert(dlog != NULL, "out of memory");
    }
    dlog[ndlog++] = (struct delivery){.p = (uint8_t)p,
                                      .q = (uint8_t)k->q,
                                      .a = (uint8_t)a,
                                      .redelivered = r != NULL && strcmp(r, "true") == 0,
                                      .s = s,
                                      .ev = evno};
    if (st(p, s)->delivered[a] < UINT16_MAX)
        st(p, s)->delivered[a]++;
    const char *frame = h_fmt("ACK\nid:%s\nreceipt:k%d.%d.%d\n\n", ack, p, s, a);
    if (h_send_raw(k->c, frame, strlen(frame) + 1) == 0)
        k->acks_waiting++;
}

/* Handle every frame c holds now; false when c is closed. */
static bool pump_conn(struct h_conn *c, int which_pub, int which_cons, int wait_ms)
{
    for (;;) {
        struct h_frame *f = h_read(c, wait_ms);
        if (f == NULL)
            return !c->closed;
        evno++;
        if (which_pub >= 0)
            on_pub_frame(&pubs[which_pub], f);
        else
            on_cons_frame(&conss[which_cons], f);
    }
}

/* One turn: wait (at most ms) for input, handle it, let publishers send. */
static void step(int wait_ms, uint64_t cycle_ms, bool new_ones)
{
    struct pollfd pfd[NP + NQ];
    int n = 0;
    for (int i = 0; i < NP; i++)
        if (pubs[i].c && pubs[i].c->fd >= 0)
            pfd[n++] = (struct pollfd){.fd = pubs[i].c->fd, .events = POLLIN};
    for (int i = 0; i < NQ; i++)
        if (conss[i].c && conss[i].c->fd >= 0)
            pfd[n++] = (struct pollfd){.fd = conss[i].c->fd, .events = POLLIN};
    poll(pfd, (nfds_t)n, wait_ms);
    bool lost = false;
    for (int i = 0; i < NP; i++)
        if (pubs[i].c && !pump_conn(pubs[i].c, i, -1, 0))
            lost = true;
    for (int i = 0; i < NQ; i++)
        if (conss[i].c && !pump_conn(conss[i].c, -1, i, 0))
            lost = true;
    if (lost && !killed)
        cr_assert_fail("a connection closed while the broker was not killed (alive: %d); log:\n%s",
                       h_broker_alive(broker), h_broker_log(broker));
    for (int i = 0; i < NP; i++)
        pub_pump(&pubs[i], cycle_ms, new_ones);
}

static const char *const *broker_args(void)
{
    static const char *args[3];
    args[0] = "--data-dir";
    args[1] = data_dir;
    args[2] = NULL;
    return args;
}

/* Start a broker on the data dir; check it recovered. */
static void start_broker(void)
{
    broker = h_broker_start_ex(WORKERS, true, broker_args(), NULL);
    killed = false;
    const char *log = h_broker_log(broker);
    cr_assert(strstr(log, h_fmt("data dir %s: recovered ", data_dir)) != NULL,
              "no 'recovered' line at start:\n%s", log);
}

/* Dial every client and subscribe the consumers. */
static void connect_all(void)
{
    for (int i = 0; i < NQ; i++) {
        conss[i].c = h_client(broker, "1.2");
        conss[i].acks_waiting = 0;
        h_subscribe(conss[i].c, queues[i], "s", "client-individual",
                    h_fmt("prefetch-count:%d\n", PREFETCH));
    }
    for (int i = 0; i < NP; i++) {
        pubs[i].c = h_client(broker, "1.2");
        pubs[i].sent_cycle = 0;
    }
}

/* kill -9, then read what the dead broker's sockets still hold. */
static void kill_and_drain(void)
{
    killed = true;
    int rc = h_broker_stop_sig(broker, SIGKILL, 5000);
    cr_assert(rc == -1 && WIFSIGNALED(broker->status) && WTERMSIG(broker->status) == SIGKILL,
              "broker did not die of SIGKILL (rc %d)", rc);
    for (int i = 0; i < NP; i++) {
        (void)pump_conn(pubs[i].c, i, -1, 500);
        h_close(pubs[i].c);
        pubs[i].c = NULL;
        for (int j = 0; j < pubs[i].npending; j++)
            pubs[i].inflight[j] = false;
    }
    for (int i = 0; i < NQ; i++) {
        (void)pump_conn(conss[i].c, -1, i, 500);
        h_close(conss[i].c);
        conss[i].c = NULL;
    }
}

static bool everything_settled(void)
{
    for (int i = 0; i < NP; i++)
        if (pubs[i].npending > 0)
            return false;
    for (int i = 0; i < NQ; i++)
        if (conss[i].acks_waiting > 0)
            return false;
    for (int p = 0; p < NP; p++)
        for (int s = 0; s < pubs[p].next_seq; s++) {
            struct mstate *m = st(p, s);
            for (int a = 0; a < m->attempts; a++)
                if ((m->receipted >> a & 1) && m->delivered[a] == 0)
                    return false;
        }
    return true;
}

static unsigned env_uint(const char *name, unsigned def)
{
    const char *v = getenv(name);
    return v && v[0] ? (unsigned)strtoul(v, NULL, 10) : def;
}

Test(crash, kill9_at_random_moments)
{
    uint64_t t0 = h_now_ms(), deadline = t0 + DEADLINE_MS;
    unsigned seed = env_uint("CRASH_SEED", DEFAULT_SEED);
    unsigned kills = env_uint("CRASH_KILLS", DEFAULT_KILLS);
    cr_assert(kills >= 1 && kills <= MAX_KILLS, "CRASH_KILLS must be 1..%d", MAX_KILLS);
    rng_state = 0x9E3779B97F4A7C15ull ^ seed;
    (void)rnd(2);
    snprintf(data_dir, sizeof data_dir, "/tmp/stampede-itest-crash-%d-XXXXXX", (int)getpid());
    cr_assert(mkdtemp(data_dir) != NULL, "mkdtemp: %s", strerror(errno));
    ms = calloc((size_t)NP * MAXSEQ, sizeof *ms);
    cr_assert(ms != NULL);
    for (int q = 0; q < NQ; q++)
        queues[q] = h_dest("queue", h_fmt("crash%d", q));
    for (int p = 0; p < NP; p++)
        pubs[p] = (struct pub){.id = p};
    for (int q = 0; q < NQ; q++)
        conss[q] = (struct cons){.q = q};

    /* Kill phase: run, kill at a random moment, restart, again. */
    uint64_t delays_total = 0;
    for (unsigned k = 0; k < kills; k++) {
        cr_assert(h_now_ms() < deadline, "deadline passed after %u kills", k);
        start_broker();
        connect_all();
        unsigned delay = 50 + rnd(351);
        delays_total += delay;
        uint64_t start = h_now_ms(), kill_at = start + delay;
        for (uint64_t now = start; now < kill_at; now = h_now_ms())
            step((int)(kill_at - now < 5 ? kill_at - now : 5), now - start, true);
        kill_and_drain();
    }

    /* Final run: no kill; resend what is left, drain every queue: done once
     * everything is receipted, delivered and acked and 1 s passes quietly
     * (at most DRAIN_MS; what is missing then is reported by the checks). */
    start_broker();
    connect_all();
    uint64_t start = h_now_ms(), quiet_since = 0;
    uint32_t last_ev = evno;
    bool settled = false;
    for (uint64_t now = start; now - start < DRAIN_MS && now < deadline; now = h_now_ms()) {
        step(20, now - start, false);
        if (evno != last_ev || !everything_settled()) {
            last_ev = evno;
            quiet_since = 0;
        } else if (quiet_since == 0) {
            quiet_since = now;
        } else if (now - quiet_since >= 1000) {
            settled = true;
            break;
        }
    }
    if (!settled)
        FAIL("final run: not settled within %d s (receipts waiting %d/%d/%d, ACK receipts "
             "waiting %u/%u/%u)",
             DRAIN_MS / 1000, pubs[0].npending, pubs[1].npending, pubs[2].npending,
             conss[0].acks_waiting, conss[1].acks_waiting, conss[2].acks_waiting);

    /* The checks. */
    unsigned long long receipted = 0, delivered = ndlog, dup_same = 0, dup_flagged = 0,
                       redelivered = 0, resent_delivered_twice = 0, unreceipted_delivered = 0,
                       lost = 0;
    for (int p = 0; p < NP; p++)
        for (int s = 0; s < pubs[p].next_seq; s++) {
            struct mstate *m = st(p, s);
            int attempts_delivered = 0;
            for (int a = 0; a < m->attempts; a++) {
                bool r = m->receipted >> a & 1;
                receipted += r;
                attempts_delivered += m->delivered[a] > 0;
                if (r && m->delivered[a] == 0) {
                    lost++;
                    FAIL("p%d s%d attempt %d got a RECEIPT and was never delivered", p, s, a);
                }
                if (!r && m->delivered[a] > 0)
                    unreceipted_delivered++;
            }
            resent_delivered_twice += attempts_delivered > 1;
        }
    /* Per (p, s, a): deliveries after the first carry redelivered:true, none
     * after an ACK's receipt. Per (queue, producer): order. */
    static uint16_t seen[NP][MAXSEQ][(MAXATT + 15) / 16]; /* bit a: (p, s, a) delivered before */
    memset(seen, 0, sizeof seen);
    static bool first_seen[NP][MAXSEQ];
    memset(first_seen, 0, sizeof first_seen);
    int last_first[NQ][NP];
    for (int q = 0; q < NQ; q++)
        for (int p = 0; p < NP; p++)
            last_first[q][p] = -1;
    for (size_t i = 0; i < ndlog; i++) {
        const struct delivery *d = &dlog[i];
        struct mstate *m = st(d->p, d->s);
        redelivered += d->redelivered;
        uint16_t *bits = &seen[d->p][d->s][d->a / 16];
        if (*bits >> (d->a % 16) & 1) {
            dup_same++;
            if (d->redelivered)
                dup_flagged++;
            else
                FAIL("p%d s%d attempt %d delivered again without redelivered:true (delivery %zu)",
                     d->p, d->s, d->a, i);
        }
        *bits |= (uint16_t)(1u << (d->a % 16));
        if (m->ack_ev[d->a] != 0 && m->ack_ev[d->a] < d->ev)
            FAIL("p%d s%d attempt %d delivered (event %u) after its ACK's RECEIPT (event %u)", d->p,
                 d->s, d->a, d->ev, m->ack_ev[d->a]);
        if (!first_seen[d->p][d->s]) {
            first_seen[d->p][d->s] = true;
            if (m->attempts == 1) {
                if (d->s <= last_first[d->q][d->p])
                    FAIL("queue %d producer %d: s%d first delivered after s%d", d->q, d->p, d->s,
                         last_first[d->q][d->p]);
                else
                    last_first[d->q][d->p] = d->s;
            }
        }
    }
    unsigned long long sent_msgs = 0;
    for (int p = 0; p < NP; p++)
        sent_msgs += (unsigned long long)pubs[p].next_seq;
    cr_log_info("crash: seed %u, %u kills (mean delay %llu ms), %llu messages (%llu SENDs, %llu "
                "sent again), %llu receipted SENDs, %llu deliveries, %llu duplicates of one SEND "
                "(%llu with redelivered:true), %llu redelivered:true in all, %llu messages "
                "delivered from two SENDs, %llu delivered without a receipt, %llu lost, %u "
                "failures, %llu ms",
                seed, kills, (unsigned long long)(delays_total / kills), sent_msgs, n_sends,
                n_resends, receipted, delivered, dup_same, dup_flagged, redelivered,
                resent_delivered_twice, unreceipted_delivered, lost, nfail,
                (unsigned long long)(h_now_ms() - t0));
    fprintf(stderr,
            "crash summary: seed=%u kills=%u messages=%llu sends=%llu resends=%llu "
            "receipted=%llu deliveries=%llu duplicates=%llu duplicates_redelivered=%llu "
            "redelivered=%llu two_sends_delivered=%llu unreceipted_delivered=%llu lost=%llu "
            "failures=%u elapsed_ms=%llu\n",
            seed, kills, sent_msgs, n_sends, n_resends, receipted, delivered, dup_same, dup_flagged,
            redelivered, resent_delivered_twice, unreceipted_delivered, lost, nfail,
            (unsigned long long)(h_now_ms() - t0));
    cr_assert(receipted > 0 && delivered > 0, "nothing went through");
    cr_assert(nfail == 0, "%u failures (the first %d are logged above); last broker log:\n%s",
              nfail, MAX_REPORTS, h_broker_log(broker));

    /* Everything was acked with a receipt: one more crash brings nothing back. */
    kill_and_drain();
    start_broker();
    const char *log = h_broker_log(broker);
    cr_assert(strstr(log, h_fmt("data dir %s: recovered 0 persistent messages", data_dir)) != NULL,
              "all acked, but the recovery found messages:\n%s", log);
    struct h_conn *c = h_client(broker, "1.2");
    for (int q = 0; q < NQ; q++)
        h_subscribe(c, queues[q], h_fmt("s%d", q), "auto", NULL);
    h_expect_silence(c, 500);
    h_broker_stop_ok(broker);
}
