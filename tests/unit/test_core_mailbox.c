/*
 * Unit tests of the mailboxes: real uv loops on real threads, one per worker.
 *
 * Each test thread plays a worker: it owns a loop, attaches, and checks every
 * command it receives (sender, addressee and per-sender sequence number). The
 * main thread only starts the workers, joins them and asserts on what they
 * recorded. Every wait is bounded by a deadline inside the test (criterion's
 * .timeout is not used: with tests running in parallel it leaks 48 bytes in
 * criterion's runner, which fails ASan builds).
 */
#include "stampede/error.h"
#include "stampede/mailbox.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifdef SLOW_BUILD
#define SCALE 10u
#else
#define SCALE 1u
#endif

#define MAXW 4
#define DEADLINE_MS 8000

struct cmd {
    uint32_t from;
    uint32_t to;
    uint64_t seq;
};

struct world;

struct tworker {
    struct world *world;
    unsigned id;
    pthread_t thread; /* set by pthread_create in the main thread */
    pthread_t self;   /* set by the worker thread itself */
    uint64_t start_ms;
    uv_loop_t loop;
    uv_idle_t sender; /* posts bursts while there is something to send */
    uv_timer_t check; /* polls for the end of the test */
    uv_check_t steps; /* budget test: commands handled per loop iteration */
    uint64_t sent[MAXW];
    uint64_t next[MAXW]; /* next sequence number expected from each sender */
    uint64_t errors;
    uint64_t overflow_posts;
    uint64_t handled, handled_at_last_step, max_step;
    unsigned unblocked;
    unsigned unblocked_wrong_thread;
    bool done;
    bool timed_out;
    bool detach_in_handler;
    double first_recv_at;
    int loop_close_rc;
};

struct world {
    struct stp_mailboxes *mb;
    unsigned n;
    uint64_t per_pair; /* commands each worker sends to each target */
    unsigned burst;
    atomic_uint done;
    atomic_int gate; /* test-specific hand-off between threads */
    void (*before_attach)(struct tworker *w);
    void (*before_run)(struct tworker *w);
    struct tworker w[MAXW];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (bounded) until world->gate >= value. */
static bool wait_gate(struct world *wd, int value)
{
    for (int i = 0; i < DEADLINE_MS; i++) {
        if (atomic_load(&wd->gate) >= value)
            return true;
        sleep_ms(1);
    }
    return false;
}

static void maybe_done(struct tworker *w)
{
    struct world *wd = w->world;
    if (w->done || stp_mailbox_backlogged(wd->mb, w->id))
        return;
    for (unsigned i = 0; i < wd->n; i++) {
        if (w->sent[i] < wd->per_pair || w->next[i] < wd->per_pair)
            return;
    }
    w->done = true;
    atomic_fetch_add(&wd->done, 1);
}

static void on_cmd(void *ctx, unsigned from, const void *p)
{
    struct tworker *w = ctx;
    struct cmd c;
    memcpy(&c, p, sizeof(c));
    if (!pthread_equal(pthread_self(), w->self) || from >= w->world->n || c.from != from ||
        c.to != w->id || c.seq != w->next[from])
        w->errors++;
    if (from < MAXW)
        w->next[from]++;
    if (w->handled++ == 0)
        w->first_recv_at = now_s();
    if (w->detach_in_handler)
        stp_mailbox_detach(w->world->mb, w->id);
    else
        maybe_done(w);
}

static void send_burst(uv_idle_t *h)
{
    struct tworker *w = h->data;
    struct world *wd = w->world;
    bool more = false;
    for (unsigned t = 0; t < wd->n; t++) {
        for (unsigned k = 0; k < wd->burst && w->sent[t] < wd->per_pair; k++) {
            struct cmd c = {w->id, t, w->sent[t]++};
            int rc = stp_mailbox_post(wd->mb, w->id, t, &c);
            if (rc < 0)
                w->errors++;
            w->overflow_posts += rc == 1;
        }
        more |= w->sent[t] < wd->per_pair;
    }
    /* stop reading, as the broker would, until the mailbox says unblocked */
    if (!more || stp_mailbox_backlogged(wd->mb, w->id))
        uv_idle_stop(h);
    maybe_done(w);
}

static void on_unblocked(void *ctx)
{
    struct tworker *w = ctx;
    w->unblocked++;
    if (!pthread_equal(pthread_self(), w->self))
        w->unblocked_wrong_thread++;
    if (stp_mailbox_backlogged(w->world->mb, w->id))
        w->errors++;
    uv_idle_start(&w->sender, send_burst);
    maybe_done(w);
}

static void count_step(uv_check_t *h)
{
    struct tworker *w = h->data;
    uint64_t step = w->handled - w->handled_at_last_step;
    if (step > w->max_step)
        w->max_step = step;
    w->handled_at_last_step = w->handled;
}

static void shut_down(struct tworker *w)
{
    stp_mailbox_detach(w->world->mb, w->id);
    uv_close((uv_handle_t *)&w->sender, NULL);
    uv_close((uv_handle_t *)&w->check, NULL);
    uv_close((uv_handle_t *)&w->steps, NULL);
}

static void check_end(uv_timer_t *h)
{
    struct tworker *w = h->data;
    struct world *wd = w->world;
    if (uv_now(&w->loop) - w->start_ms > DEADLINE_MS) {
        w->timed_out = true;
        shut_down(w);
    } else if (atomic_load(&wd->done) == wd->n) {
        shut_down(w);
    }
}

static void *worker_main(void *arg)
{
    struct tworker *w = arg;
    struct world *wd = w->world;
    w->self = pthread_self();
    uv_loop_init(&w->loop);
    w->start_ms = uv_now(&w->loop);
    uv_idle_init(&w->loop, &w->sender);
    uv_timer_init(&w->loop, &w->check);
    uv_check_init(&w->loop, &w->steps);
    w->sender.data = w->check.data = w->steps.data = w;
    if (wd->before_attach)
        wd->before_attach(w);
    if (stp_mailbox_attach(wd->mb, w->id, &w->loop, on_cmd, on_unblocked, w) != 0)
        w->errors++;
    if (wd->before_run)
        wd->before_run(w);
    uv_idle_start(&w->sender, send_burst);
    uv_timer_start(&w->check, check_end, 1, 1);
    uv_check_start(&w->steps, count_step);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    w->loop_close_rc = uv_loop_close(&w->loop);
    return NULL;
}

static void world_init(struct world *wd, unsigned n, size_t cap, uint64_t per_pair)
{
    memset(wd, 0, sizeof(*wd));
    wd->n = n;
    wd->per_pair = per_pair;
    wd->burst = 64;
    cr_assert_eq(stp_mailboxes_init(&wd->mb, n, cap, sizeof(struct cmd)), 0);
    for (unsigned i = 0; i < n; i++) {
        wd->w[i].world = wd;
        wd->w[i].id = i;
    }
}

static void world_run(struct world *wd)
{
    for (unsigned i = 0; i < wd->n; i++)
        cr_assert_eq(pthread_create(&wd->w[i].thread, NULL, worker_main, &wd->w[i]), 0);
    for (unsigned i = 0; i < wd->n; i++)
        pthread_join(wd->w[i].thread, NULL);
}

/* Only from -> to carries commands: every other pair counts as done. */
static void world_only(struct world *wd, unsigned from, unsigned to)
{
    for (unsigned i = 0; i < wd->n; i++) {
        for (unsigned j = 0; j < wd->n; j++) {
            if (i != from || j != to) {
                wd->w[i].sent[j] = wd->per_pair;
                wd->w[j].next[i] = wd->per_pair;
            }
        }
    }
}

/* Every worker received every sequence from every sender exactly once, in order. */
static void world_check(struct world *wd)
{
    for (unsigned i = 0; i < wd->n; i++) {
        struct tworker *w = &wd->w[i];
        cr_assert_not(w->timed_out, "worker %u timed out", i);
        cr_assert_eq(w->errors, 0, "worker %u saw %llu errors", i, (unsigned long long)w->errors);
        cr_assert_eq(w->loop_close_rc, 0, "worker %u left handles open", i);
        cr_assert_eq(w->unblocked_wrong_thread, 0);
        for (unsigned s = 0; s < wd->n; s++)
            cr_assert_eq(w->next[s], wd->per_pair, "worker %u got %llu from %u", i,
                         (unsigned long long)w->next[s], s);
        cr_assert_eq(stp_mailbox_depth(wd->mb, i), 0, "nothing left for worker %u", i);
        cr_assert_not(stp_mailbox_backlogged(wd->mb, i));
    }
}

static void all_to_all(unsigned n, uint64_t per_pair)
{
    struct world wd;
    world_init(&wd, n, 256, per_pair);
    world_run(&wd);
    world_check(&wd);
    uint64_t overflows = 0, unblocked = 0;
    for (unsigned i = 0; i < n; i++) {
        overflows += wd.w[i].overflow_posts;
        unblocked += wd.w[i].unblocked;
        /* every episode of overflow ends with exactly one on_unblocked */
        cr_assert_eq(wd.w[i].overflow_posts > 0, wd.w[i].unblocked > 0);
    }
    cr_log_info("%u workers: %llu overflowed posts, %llu unblocks\n", n,
                (unsigned long long)overflows, (unsigned long long)unblocked);
    stp_mailboxes_free(wd.mb);
}

Test(core_mailbox, init_rejects_bad_arguments)
{
    struct stp_mailboxes *mb = (void *)1;
    cr_assert_eq(stp_mailboxes_init(&mb, 0, 16, 8), STP_EINVAL);
    cr_assert_null(mb);
    cr_assert_eq(stp_mailboxes_init(&mb, 2, 12, 8), STP_EINVAL);
    cr_assert_eq(stp_mailboxes_init(&mb, 2, 16, 0), STP_EINVAL);
    cr_assert_eq(stp_mailboxes_init(&mb, 3, 16, 8), 0);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(stp_mailbox_depth(mb, i), 0);
        cr_assert_not(stp_mailbox_backlogged(mb, i));
    }
    stp_mailboxes_free(mb);
    stp_mailboxes_free(NULL);
}

static void count_self(void *ctx, unsigned from, const void *p)
{
    uint64_t *got = ctx;
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    cr_assert_eq(from, 0);
    cr_assert_eq(v, *got);
    (*got)++;
}

Test(core_mailbox, self_post_calls_handler_directly)
{
    struct stp_mailboxes *mb;
    cr_assert_eq(stp_mailboxes_init(&mb, 1, 4, sizeof(uint64_t)), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    uint64_t got = 0;
    cr_assert_eq(stp_mailbox_attach(mb, 0, &loop, count_self, NULL, &got), 0);
    for (uint64_t i = 0; i < 100; i++) { /* far more than the ring capacity */
        cr_assert_eq(stp_mailbox_post(mb, 0, 0, &i), 0);
        cr_assert_eq(got, i + 1, "handled before post returned");
    }
    cr_assert_not(stp_mailbox_backlogged(mb, 0));
    stp_mailbox_detach(mb, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "detach closed every handle");
    stp_mailboxes_free(mb);
}

Test(core_mailbox, two_workers_all_to_all)
{
    all_to_all(2, 200000 / SCALE);
}

Test(core_mailbox, four_workers_all_to_all)
{
    all_to_all(4, 50000 / SCALE);
}

/* ---- overflow: a tiny ring and a receiver whose thread is blocked ---- */

static void overflow_before_run(struct tworker *w)
{
    struct world *wd = w->world;
    if (w->id == 1) { /* the receiver: blocked until the sender has overflowed */
        if (!wait_gate(wd, 1))
            w->errors++;
        return;
    }
    /* the sender: everything at once, ignoring back-pressure */
    for (uint64_t i = 0; i < wd->per_pair; i++) {
        struct cmd c = {0, 1, i};
        int rc = stp_mailbox_post(wd->mb, 0, 1, &c);
        if (rc != (i < 4 ? 0 : 1))
            w->errors++;
        w->overflow_posts += rc == 1;
    }
    w->sent[1] = wd->per_pair;
    if (!stp_mailbox_backlogged(wd->mb, 0) ||
        stp_mailbox_overflowed(wd->mb, 0) != wd->per_pair - 4 || stp_mailbox_depth(wd->mb, 1) != 4)
        w->errors++;
    /* the sender's loop retries while the receiver is still asleep */
    uv_run(&w->loop, UV_RUN_NOWAIT);
    sleep_ms(50);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    if (!stp_mailbox_backlogged(wd->mb, 0) || w->unblocked != 0)
        w->errors++;
    atomic_store(&wd->gate, 1);
}

Test(core_mailbox, overflow_keeps_order_and_unblocks)
{
    struct world wd;
    world_init(&wd, 2, 4, 100);
    wd.before_run = overflow_before_run;
    /* worker 1 sends nothing; worker 0 sends only to 1 */
    world_only(&wd, 0, 1);
    world_run(&wd);
    world_check(&wd);
    cr_assert_eq(wd.w[0].overflow_posts, 96);
    cr_assert_eq(wd.w[0].unblocked, 1, "on_unblocked fired once");
    cr_assert_eq(wd.w[1].handled, 100);
    stp_mailboxes_free(wd.mb);
}

/* ---- posts before the receiver attached are delivered after it does ---- */

static void early_before_attach(struct tworker *w)
{
    struct world *wd = w->world;
    if (w->id == 1) {
        if (!wait_gate(wd, 1))
            w->errors++;
    }
}

static void early_before_run(struct tworker *w)
{
    struct world *wd = w->world;
    if (w->id != 0)
        return;
    for (uint64_t i = 0; i < wd->per_pair; i++) {
        struct cmd c = {0, 1, i};
        w->overflow_posts += stp_mailbox_post(wd->mb, 0, 1, &c) == 1;
    }
    w->sent[1] = wd->per_pair;
    atomic_store(&wd->gate, 1);
}

Test(core_mailbox, posts_before_receiver_attaches_arrive)
{
    struct world wd;
    world_init(&wd, 2, 4, 10);
    wd.before_attach = early_before_attach;
    wd.before_run = early_before_run;
    world_only(&wd, 0, 1);
    world_run(&wd);
    world_check(&wd);
    cr_assert_eq(wd.w[0].overflow_posts, 6);
    cr_assert_eq(wd.w[0].unblocked, 1);
    stp_mailboxes_free(wd.mb);
}

/* ---- one busy sender cannot keep the receiver's loop in one callback ---- */

static void budget_before_run(struct tworker *w)
{
    struct world *wd = w->world;
    if (w->id == 1) {
        if (!wait_gate(wd, 1))
            w->errors++;
        return;
    }
    for (uint64_t i = 0; i < wd->per_pair; i++) {
        struct cmd c = {0, 1, i};
        if (stp_mailbox_post(wd->mb, 0, 1, &c) != 0)
            w->errors++;
    }
    w->sent[1] = wd->per_pair;
    atomic_store(&wd->gate, 1);
}

Test(core_mailbox, drain_yields_to_the_loop)
{
    struct world wd;
    world_init(&wd, 2, 4096, 3000);
    wd.before_run = budget_before_run;
    world_only(&wd, 0, 1);
    world_run(&wd);
    world_check(&wd);
    cr_assert_eq(wd.w[1].handled, 3000);
    cr_assert_eq(wd.w[1].max_step, 1024, "at most one budget per loop iteration, got %llu",
                 (unsigned long long)wd.w[1].max_step);
    stp_mailboxes_free(wd.mb);
}

/* ---- the wake-up path: a receiver asleep in uv_run, one post wakes it ---- */

struct wake_test {
    struct stp_mailboxes *mb;
    atomic_int receiver_running;
    pthread_t receiver;      /* written by pthread_create in the main thread */
    pthread_t receiver_self; /* written by the receiver thread */
    uv_loop_t rloop, sloop;
    uv_timer_t deadline; /* the receiver gives up after 3 s */
    uint64_t received;
    unsigned from;
    double posted_at, received_at;
    bool receiver_ok;
};

static void wake_handler(void *ctx, unsigned from, const void *p)
{
    struct wake_test *t = ctx;
    (void)p;
    t->received_at = now_s();
    t->received++;
    t->from = from;
    t->receiver_ok = pthread_equal(pthread_self(), t->receiver_self);
    stp_mailbox_detach(t->mb, 1); /* from inside the handler: the loop then ends */
    uv_close((uv_handle_t *)&t->deadline, NULL);
}

static void wake_deadline(uv_timer_t *h)
{
    struct wake_test *t = h->data;
    stp_mailbox_detach(t->mb, 1);
    uv_close((uv_handle_t *)h, NULL);
}

static void *wake_receiver(void *arg)
{
    struct wake_test *t = arg;
    t->receiver_self = pthread_self();
    uv_loop_init(&t->rloop);
    stp_mailbox_attach(t->mb, 1, &t->rloop, wake_handler, NULL, t);
    uv_timer_init(&t->rloop, &t->deadline);
    t->deadline.data = t;
    uv_timer_start(&t->deadline, wake_deadline, 3000, 0);
    atomic_store(&t->receiver_running, 1);
    /* sleeps in epoll: nothing but the async (or the 3 s deadline) wakes it */
    uv_run(&t->rloop, UV_RUN_DEFAULT);
    uv_loop_close(&t->rloop);
    return NULL;
}

static void ignore_cmd(void *ctx, unsigned from, const void *p)
{
    (void)ctx, (void)from, (void)p;
}

static void *wake_sender(void *arg)
{
    struct wake_test *t = arg;
    uv_loop_init(&t->sloop);
    stp_mailbox_attach(t->mb, 0, &t->sloop, ignore_cmd, NULL, t);
    for (int i = 0; i < DEADLINE_MS && !atomic_load(&t->receiver_running); i++)
        sleep_ms(1);
    sleep_ms(100); /* let the receiver go to sleep in epoll */
    uint64_t v = 7;
    t->posted_at = now_s();
    stp_mailbox_post(t->mb, 0, 1, &v);
    stp_mailbox_detach(t->mb, 0);
    uv_run(&t->sloop, UV_RUN_DEFAULT);
    uv_loop_close(&t->sloop);
    return NULL;
}

Test(core_mailbox, single_post_wakes_sleeping_receiver)
{
    struct wake_test t;
    memset(&t, 0, sizeof(t));
    cr_assert_eq(stp_mailboxes_init(&t.mb, 2, 16, sizeof(uint64_t)), 0);
    pthread_t sender;
    cr_assert_eq(pthread_create(&t.receiver, NULL, wake_receiver, &t), 0);
    cr_assert_eq(pthread_create(&sender, NULL, wake_sender, &t), 0);
    pthread_join(sender, NULL);
    pthread_join(t.receiver, NULL);
    cr_assert_eq(t.received, 1, "the post did not wake the receiver");
    cr_assert_eq(t.from, 0);
    cr_assert(t.receiver_ok, "handler ran on the receiver's thread");
    cr_assert_lt(t.received_at - t.posted_at, 1.0, "woken in %.3f s", t.received_at - t.posted_at);
    cr_log_info("wake-up latency %.1f us\n", (t.received_at - t.posted_at) * 1e6);
    stp_mailboxes_free(t.mb);
}

/* ---- a push racing with a drain is not lost ----
 * Receiver 2 drains ring[0][2] and then ring[1][2]. While it handles worker 1's
 * command, worker 0 posts into ring[0][2], already visited in this round. The
 * wake flag was cleared before the drain, so worker 0's post must send a fresh
 * wake-up; a receiver that cleared it after draining would sleep forever. */

struct race_test {
    struct stp_mailboxes *mb;
    atomic_int gate;
    atomic_int receiver_ready;
    uv_loop_t loops[3];
    uv_timer_t deadline;
    uint64_t got_from[3];
    bool timed_out;
    bool gate_timeout;
};

static bool race_wait(struct race_test *t, int value)
{
    for (int i = 0; i < 2000; i++) {
        if (atomic_load(&t->gate) >= value)
            return true;
        sleep_ms(1);
    }
    return false;
}

static void race_handler(void *ctx, unsigned from, const void *p)
{
    struct race_test *t = ctx;
    (void)p;
    t->got_from[from]++;
    if (from == 1) {
        atomic_store(&t->gate, 1); /* worker 0: post now, while we are mid-drain */
        t->gate_timeout |= !race_wait(t, 2);
    } else {
        stp_mailbox_detach(t->mb, 2);
        uv_close((uv_handle_t *)&t->deadline, NULL);
    }
}

static void race_deadline(uv_timer_t *h)
{
    struct race_test *t = h->data;
    t->timed_out = true;
    stp_mailbox_detach(t->mb, 2);
    uv_close((uv_handle_t *)h, NULL);
}

static void *race_receiver(void *arg)
{
    struct race_test *t = arg;
    uv_loop_init(&t->loops[2]);
    stp_mailbox_attach(t->mb, 2, &t->loops[2], race_handler, NULL, t);
    uv_timer_init(&t->loops[2], &t->deadline);
    t->deadline.data = t;
    uv_timer_start(&t->deadline, race_deadline, 3000, 0);
    atomic_store(&t->receiver_ready, 1);
    uv_run(&t->loops[2], UV_RUN_DEFAULT);
    uv_loop_close(&t->loops[2]);
    return NULL;
}

static void race_send(struct race_test *t, unsigned self)
{
    uv_loop_init(&t->loops[self]);
    stp_mailbox_attach(t->mb, self, &t->loops[self], ignore_cmd, NULL, t);
    if (self == 1) {
        for (int i = 0; i < 2000 && !atomic_load(&t->receiver_ready); i++)
            sleep_ms(1);
        sleep_ms(20);
    } else {
        t->gate_timeout |= !race_wait(t, 1);
    }
    uint64_t v = self;
    stp_mailbox_post(t->mb, self, 2, &v);
    if (self == 0)
        atomic_store(&t->gate, 2);
    stp_mailbox_detach(t->mb, self);
    uv_run(&t->loops[self], UV_RUN_DEFAULT);
    uv_loop_close(&t->loops[self]);
}

static void *race_sender0(void *arg)
{
    race_send(arg, 0);
    return NULL;
}

static void *race_sender1(void *arg)
{
    race_send(arg, 1);
    return NULL;
}

Test(core_mailbox, push_during_drain_is_not_lost)
{
    struct race_test t;
    memset(&t, 0, sizeof(t));
    cr_assert_eq(stp_mailboxes_init(&t.mb, 3, 16, sizeof(uint64_t)), 0);
    pthread_t th[3];
    cr_assert_eq(pthread_create(&th[2], NULL, race_receiver, &t), 0);
    cr_assert_eq(pthread_create(&th[1], NULL, race_sender1, &t), 0);
    cr_assert_eq(pthread_create(&th[0], NULL, race_sender0, &t), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    cr_assert_not(t.gate_timeout);
    cr_assert_not(t.timed_out, "the post made during the drain was never delivered");
    cr_assert_eq(t.got_from[1], 1);
    cr_assert_eq(t.got_from[0], 1);
    stp_mailboxes_free(t.mb);
}

/* ---- free discards what is still queued (ASan checks nothing leaks) ---- */

Test(core_mailbox, free_discards_leftovers)
{
    struct stp_mailboxes *mb;
    cr_assert_eq(stp_mailboxes_init(&mb, 2, 4, sizeof(struct cmd)), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cr_assert_eq(stp_mailbox_attach(mb, 0, &loop, ignore_cmd, NULL, NULL), 0);
    for (uint64_t i = 0; i < 1000; i++) { /* several overflow chunks */
        struct cmd c = {0, 1, i};
        cr_assert_eq(stp_mailbox_post(mb, 0, 1, &c), i < 4 ? 0 : 1);
    }
    cr_assert_eq(stp_mailbox_overflowed(mb, 0), 996);
    cr_assert_eq(stp_mailbox_depth(mb, 1), 4);
    stp_mailbox_detach(mb, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    stp_mailboxes_free(mb); /* receiver 1 never attached */
}

/* --- stp_mailbox_try_post: a sender with no loop (issue 14's NATS delivery
 * thread) --- */

struct tp_receiver {
    struct stp_mailboxes *mb;
    uv_loop_t loop;
    uv_timer_t poll;
    uint64_t expect, total, errors;
    atomic_bool attached;
};

static void tp_on_cmd(void *ctx, unsigned from, const void *p)
{
    struct tp_receiver *r = ctx;
    struct cmd c;
    memcpy(&c, p, sizeof(c));
    if (from != 1 || c.from != 1 || c.seq != r->expect)
        r->errors++;
    r->expect = c.seq + 1;
}

static void tp_on_poll(uv_timer_t *t)
{
    struct tp_receiver *r = t->data;
    if (r->expect == r->total) {
        stp_mailbox_detach(r->mb, 0);
        uv_close((uv_handle_t *)t, NULL);
    }
}

static void tp_unblocked(void *ctx)
{
    (void)ctx;
}

static void *tp_receiver_main(void *arg)
{
    struct tp_receiver *r = arg;
    uv_loop_init(&r->loop);
    uv_timer_init(&r->loop, &r->poll);
    r->poll.data = r;
    uv_timer_start(&r->poll, tp_on_poll, 1, 1);
    cr_assert_eq(stp_mailbox_attach(r->mb, 0, &r->loop, tp_on_cmd, tp_unblocked, r), 0);
    atomic_store(&r->attached, true);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    return NULL;
}

Test(core_mailbox, try_post_from_a_thread_without_loop)
{
    struct tp_receiver r = {.total = 200000 / SCALE};
    cr_assert_eq(stp_mailboxes_init(&r.mb, 2, 64, sizeof(struct cmd)), 0);
    /* Nobody drains yet: the ring takes its capacity, then says EAGAIN and
     * queues nothing. */
    uint64_t seq = 0;
    struct cmd c = {.from = 1, .to = 0};
    for (;;) {
        c.seq = seq;
        if (stp_mailbox_try_post(r.mb, 1, 0, &c) == STP_EAGAIN)
            break;
        seq++;
        cr_assert(seq <= 64, "the ring took more than its capacity");
    }
    cr_assert_eq(seq, 64);
    cr_assert_eq(stp_mailbox_depth(r.mb, 0), 64);
    pthread_t th;
    pthread_create(&th, NULL, tp_receiver_main, &r);
    double deadline = now_s() + DEADLINE_MS / 1000.0;
    while (seq < r.total && now_s() < deadline) {
        c.seq = seq;
        int rc = stp_mailbox_try_post(r.mb, 1, 0, &c);
        if (rc == 0)
            seq++;
        else
            cr_assert_eq(rc, STP_EAGAIN);
    }
    pthread_join(th, NULL);
    cr_assert_eq(seq, r.total, "timed out after %llu of %llu", (unsigned long long)seq,
                 (unsigned long long)r.total);
    cr_assert_eq(r.expect, r.total, "every command arrived");
    cr_assert_eq(r.errors, 0, "in order, from the right sender");
    stp_mailboxes_free(r.mb);
}
