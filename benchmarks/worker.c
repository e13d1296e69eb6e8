/*
 * worker.c - one generator thread: its uv loop, its share of the connections,
 * a 10 ms housekeeping timer (end of the run, heart-beats of idle
 * connections) and, when it has paced producers, a timerfd that fires at the
 * pacing period with sub-millisecond precision (libuv timers tick in ms).
 *
 * The main thread creates the loop and handles (stp_bench_thread_init) before
 * the thread runs; after that only this thread touches them, and the main
 * thread reaches it through uv_async_send (stp_bench_thread_wake).
 */
#include "bench.h"

#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define HOUSE_MS 10
#define MIN_PACE_NS UINT64_C(100000)  /* 100 us */
#define MAX_PACE_NS UINT64_C(1000000) /* 1 ms */

static void each_producer(struct stp_bench_thread *t, uint64_t now)
{
    for (unsigned i = 0; i < t->nconns; i++)
        if (t->conns[i]->role == ROLE_PRODUCER)
            stp_bench_producer_pump(t->conns[i], now);
}

void stp_bench_thread_kick(struct stp_bench_thread *t)
{
    const struct stp_bench_config *cfg = &t->run->cfg;
    if (t->started && cfg->rate == 0 && cfg->window)
        each_producer(t, uv_hrtime());
}

static void on_pace(uv_poll_t *h, int status, int events)
{
    struct stp_bench_thread *t = h->data;
    uint64_t expirations;
    if (read(t->pace_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        stp_bench_fail(t->run, "timerfd read: %s", strerror(errno));
    each_producer(t, uv_hrtime());
}

/* A timerfd ticking every pace_period_ns from the run's start. */
static int start_pacing(struct stp_bench_thread *t)
{
    uint64_t period = 0;
    for (unsigned i = 0; i < t->nconns; i++) {
        struct stp_bench_conn *c = t->conns[i];
        uint64_t iv = c->role == ROLE_PRODUCER ? stp_pacer_interval(&c->u.p.pacer) : 0;
        if (iv && (period == 0 || iv < period))
            period = iv;
    }
    if (period == 0)
        return 0;
    period = period < MIN_PACE_NS ? MIN_PACE_NS : period > MAX_PACE_NS ? MAX_PACE_NS : period;
    if (t->run->cfg.tick_ns)
        period = t->run->cfg.tick_ns;
    t->pace_period_ns = period;
    t->pace_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t->pace_fd < 0)
        return STP_EIO;
    uint64_t start = t->run->t_start;
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(start / 1000000000), .tv_nsec = (long)(start % 1000000000)},
        .it_interval = {.tv_sec = 0, .tv_nsec = (long)period},
    };
    /* uv_hrtime() is CLOCK_MONOTONIC, so the start time is an absolute expiry */
    if (timerfd_settime(t->pace_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        return STP_EIO;
    uv_poll_init(&t->loop, &t->pace_poll, t->pace_fd);
    t->pace_poll.data = t;
    return stp_err_from_uv(uv_poll_start(&t->pace_poll, UV_READABLE, on_pace));
}

void stp_bench_thread_check_start(struct stp_bench_thread *t)
{
    struct stp_bench_run *r = t->run;
    /* acquire pairs with the main thread's release: the phase times are set */
    if (t->started || !atomic_load_explicit(&r->started, memory_order_acquire))
        return;
    t->started = true;
    for (unsigned i = 0; i < t->nconns; i++) {
        struct stp_bench_conn *c = t->conns[i];
        if (c->role == ROLE_PRODUCER)
            stp_pacer_init(&c->u.p.pacer, r->t_start, r->t_measure_end, r->cfg.rate);
    }
    int rc = start_pacing(t);
    if (rc)
        stp_bench_fail(r, "cannot start the pacing timer: %s", stp_strerror(rc));
    each_producer(t, uv_hrtime());
}

static void on_close_noop(uv_handle_t *h)
{
    (void)h;
}

static void shutdown_thread(struct stp_bench_thread *t)
{
    if (t->stopping)
        return;
    t->stopping = true;
    for (unsigned i = 0; i < t->nconns; i++)
        stp_bench_conn_close(t->conns[i]);
    uv_close((uv_handle_t *)&t->house, on_close_noop);
    uv_close((uv_handle_t *)&t->wake, on_close_noop);
    if (t->pace_fd >= 0)
        uv_close((uv_handle_t *)&t->pace_poll, on_close_noop);
}

static void on_wake(uv_async_t *h)
{
    struct stp_bench_thread *t = h->data;
    if (atomic_load_explicit(&t->run->stop, memory_order_acquire)) {
        shutdown_thread(t);
        return;
    }
    stp_bench_thread_check_start(t);
}

static void heartbeat(struct stp_bench_conn *c, uint64_t now)
{
    if (c->state != CONN_READY || c->hb_send_ns == 0 || now - c->hb_last_sent < c->hb_send_ns)
        return;
    c->hb_last_sent = now;
    if (stp_bench_conn_append(c, "\n", 1) == 0)
        stp_bench_conn_flush(c);
}

static void on_house(uv_timer_t *h)
{
    struct stp_bench_thread *t = h->data;
    uint64_t now = uv_hrtime();
    stp_bench_thread_check_start(t);
    for (unsigned i = 0; i < t->nconns; i++) {
        struct stp_bench_conn *c = t->conns[i];
        if (c->role == ROLE_IDLE)
            heartbeat(c, now);
        else if (c->role == ROLE_PRODUCER && t->started && !c->writing)
            stp_bench_producer_pump(c, now); /* unpaced start, end of the run */
    }
}

static void thread_main(void *arg)
{
    struct stp_bench_thread *t = arg;
    char name[16];
    snprintf(name, sizeof(name), "bench-w%u", t->index);
    pthread_setname_np(pthread_self(), name);
    for (unsigned i = 0; i < t->nconns; i++) {
        int rc = stp_bench_conn_start(t->conns[i]);
        if (rc) {
            stp_bench_fail(t->run, "connection setup failed: %s", stp_strerror(rc));
            break;
        }
    }
    /* unpaced producers waiting for their window are woken at least every ms */
    const struct stp_bench_config *cfg = &t->run->cfg;
    uint64_t every = cfg->rate == 0 && cfg->window ? 1 : HOUSE_MS;
    uv_timer_start(&t->house, on_house, every, every);
    uv_run(&t->loop, UV_RUN_DEFAULT);
}

int stp_bench_thread_init(struct stp_bench_thread *t)
{
    int rc = uv_loop_init(&t->loop);
    if (rc)
        return stp_err_from_uv(rc);
    uv_async_init(&t->loop, &t->wake, on_wake);
    t->wake.data = t;
    uv_timer_init(&t->loop, &t->house);
    t->house.data = t;
    t->pace_fd = -1;
    if (t->run->any_tls && stp_tls_rng_new(&t->tls_rng) != 0)
        return STP_ENOMEM;
    stp_lathist_init(&t->lat);
    stp_lathist_init(&t->rcpt_lat);
    return 0;
}

int stp_bench_thread_spawn(struct stp_bench_thread *t)
{
    return stp_err_from_uv(uv_thread_create(&t->tid, thread_main, t));
}

void stp_bench_thread_wake(struct stp_bench_thread *t)
{
    uv_async_send(&t->wake);
}

void stp_bench_thread_fini(struct stp_bench_thread *t)
{
    uv_run(&t->loop, UV_RUN_NOWAIT); /* close callbacks still pending, if any */
    uv_loop_close(&t->loop);
    if (t->pace_fd >= 0)
        close(t->pace_fd);
    if (t->tls_rng)
        stp_tls_rng_free(&t->tls_rng);
}
