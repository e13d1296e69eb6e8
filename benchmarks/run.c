/*
 * run.c - the main thread's side of a run (see run.h). The main thread polls
 * the workers' single-writer counters every 10 ms; the phase times are
 * published to the workers with a release store of run->started.
 */
#include "run.h"

#include "stampede/error.h"
#include "stampede/tls.h"

#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define POLL_NS UINT64_C(10000000)
#define SEC UINT64_C(1000000000)

static volatile sig_atomic_t interrupted;

void stp_bench_run_interrupt(void)
{
    interrupted = 1;
}

static unsigned usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Resolve the endpoint's host and make its TLS profile (TLS transports). */
static int endpoint_init(struct stp_bench_run *r, struct stp_bench_endpoint *ep,
                         const struct stp_bench_url *u, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[8];
    ep->url = u;
    snprintf(port, sizeof(port), "%u", u->port);
    int rc = getaddrinfo(u->host, port, &hints, &ai);
    if (rc || !ai) {
        snprintf(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(rc));
        return STP_EINVAL;
    }
    memcpy(&ep->addr, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (!u->transport->tls)
        return 0;
    r->any_tls = true;
    struct stp_tls_client_opts o = {
        .server_name = u->host,
        .ca_path = r->cfg.tls_ca[0] ? r->cfg.tls_ca : NULL,
    };
    return stp_tls_client_config_new(&ep->tls_config, &o, err, errlen) ? STP_EINVAL : 0;
}

/* ep[0] for --url; ep[1] for --sub-url when one was given. */
static int endpoints_init(struct stp_bench_run *r, char *err, size_t errlen)
{
    r->nep = r->cfg.sub_url_text[0] ? 2 : 1;
    int rc = endpoint_init(r, &r->ep[0], &r->cfg.url, err, errlen);
    if (rc == 0 && r->nep == 2)
        rc = endpoint_init(r, &r->ep[1], &r->cfg.sub_url, err, errlen);
    return rc;
}

/* Subscribers (consumers, pattern holders) dial --sub-url; the others --url. */
static const struct stp_bench_endpoint *endpoint_for(const struct stp_bench_run *r,
                                                     enum stp_bench_role role)
{
    bool sub = role == ROLE_CONSUMER || role == ROLE_PATTERNS;
    return sub && r->nep == 2 ? &r->ep[1] : &r->ep[0];
}

static struct stp_bench_conn *new_conn(struct stp_bench_run *r, enum stp_bench_role role,
                                       unsigned index, unsigned *next_thread)
{
    struct stp_bench_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->role = role;
    c->index = index;
    c->ep = endpoint_for(r, role);
    struct stp_bench_thread *t = &r->threads[(*next_thread)++ % r->nthreads];
    c->t = t;
    t->conns[t->nconns++] = c;
    int rc = 0;
    if (role == ROLE_PRODUCER)
        rc = stp_bench_producer_init(c, r);
    else if (role == ROLE_CONSUMER)
        rc = stp_bench_consumer_init(c, r);
    return rc ? NULL : c;
}

static int build_dests(struct stp_bench_run *r)
{
    const struct stp_bench_config *cfg = &r->cfg;
    r->dests = calloc(cfg->destinations, sizeof(*r->dests));
    if (!r->dests)
        return STP_ENOMEM;
    for (unsigned d = 0; d < cfg->destinations; d++) {
        struct stp_bench_dest *dst = &r->dests[d];
        snprintf(dst->name, sizeof(dst->name), "/%s/%s-%u", cfg->topic ? "topic" : "queue",
                 cfg->dest_prefix, d);
        dst->nproducers =
            cfg->producers / cfg->destinations + (d < cfg->producers % cfg->destinations);
        dst->nconsumers =
            cfg->consumers / cfg->destinations + (d < cfg->consumers % cfg->destinations);
        if (!cfg->topic && stp_seqtrack_init(&dst->shared, dst->nproducers))
            return STP_ENOMEM;
    }
    return 0;
}

static int build(struct stp_bench_run *r)
{
    const struct stp_bench_config *cfg = &r->cfg;
    r->nthreads = cfg->threads ? cfg->threads : usable_cpus();
    unsigned holders =
        (cfg->idle_patterns + STP_BENCH_PATTERNS_PER_CONN - 1) / STP_BENCH_PATTERNS_PER_CONN;
    r->total_conns = cfg->producers + cfg->consumers + cfg->idle_connections + holders;
    if (r->nthreads > r->total_conns)
        r->nthreads = r->total_conns;
    r->threads = calloc(r->nthreads, sizeof(*r->threads));
    r->producers = calloc(cfg->producers + 1, sizeof(*r->producers));
    r->consumers = calloc(cfg->consumers + 1, sizeof(*r->consumers));
    r->idles = calloc(cfg->idle_connections + 1, sizeof(*r->idles));
    if (!r->threads || !r->producers || !r->consumers || !r->idles || build_dests(r))
        return STP_ENOMEM;
    for (unsigned d = 0; d < cfg->destinations; d++) {
        struct stp_bench_dest *dst = &r->dests[d];
        dst->pconns = calloc(dst->nproducers + 1, sizeof(*dst->pconns));
        dst->cconns = calloc(dst->nconsumers + 1, sizeof(*dst->cconns));
        if (!dst->pconns || !dst->cconns)
            return STP_ENOMEM;
    }
    for (unsigned i = 0; i < r->nthreads; i++) {
        struct stp_bench_thread *t = &r->threads[i];
        t->run = r;
        t->index = i;
        t->conns = calloc(r->total_conns / r->nthreads + 1, sizeof(*t->conns));
        if (!t->conns || stp_bench_thread_init(t))
            return STP_ENOMEM;
    }
    unsigned next = 0;
    for (unsigned i = 0; i < cfg->consumers; i++) {
        if (!(r->consumers[i] = new_conn(r, ROLE_CONSUMER, i, &next)))
            return STP_ENOMEM;
        struct stp_bench_dest *dst = &r->dests[i % cfg->destinations];
        dst->cconns[dst->ncconns++] = r->consumers[i];
    }
    for (unsigned i = 0; i < cfg->producers; i++) {
        if (!(r->producers[i] = new_conn(r, ROLE_PRODUCER, i, &next)))
            return STP_ENOMEM;
        struct stp_bench_dest *dst = &r->dests[i % cfg->destinations];
        dst->pconns[dst->npconns++] = r->producers[i];
    }
    for (unsigned i = 0; i < cfg->idle_connections; i++)
        if (!(r->idles[i] = new_conn(r, ROLE_IDLE, i, &next)))
            return STP_ENOMEM;
    for (unsigned i = 0; i < holders; i++) /* freed with their thread's connections */
        if (!new_conn(r, ROLE_PATTERNS, i, &next))
            return STP_ENOMEM;
    return 0;
}

/* --- live counters --- */

struct totals {
    uint64_t sent, expected, unique, received;
    uint64_t receipts, receipts_asked;
    bool producers_done;
};

static void gather(const struct stp_bench_run *r, struct totals *tt)
{
    const struct stp_bench_config *cfg = &r->cfg;
    memset(tt, 0, sizeof(*tt));
    tt->producers_done = true;
    for (unsigned i = 0; i < cfg->producers; i++) {
        struct stp_bench_producer *p = &r->producers[i]->u.p;
        uint64_t s = COUNT_GET(p->written);
        unsigned d = p->dest;
        tt->sent += COUNT_GET(p->sent);
        tt->receipts += COUNT_GET(p->receipts);
        tt->receipts_asked += COUNT_GET(p->receipts_asked);
        /* a topic delivers to each subscriber, a queue to one of them */
        if (r->dests[d].nconsumers)
            tt->expected += cfg->topic ? s * r->dests[d].nconsumers : s;
        tt->producers_done &= atomic_load_explicit(&p->done, memory_order_relaxed) != 0;
    }
    for (unsigned i = 0; i < cfg->consumers; i++) {
        tt->unique += COUNT_GET(r->consumers[i]->u.c.unique);
        tt->received += COUNT_GET(r->consumers[i]->u.c.received);
    }
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / SEC), .tv_nsec = (long)(ns % SEC)};
    nanosleep(&ts, NULL);
}

static void progress(const struct stp_bench_run *r, uint64_t now, struct totals *prev,
                     uint64_t *last)
{
    struct totals tt;
    gather(r, &tt);
    double dt = (double)(now - *last) / 1e9;
    const char *phase = now < r->t_warm_end      ? "warmup"
                        : now < r->t_measure_end ? "measure"
                                                 : "drain";
    if (!r->cfg.quiet && r->cfg.receipts)
        fprintf(stderr,
                "[%6.1fs] %-7s sent %10.0f/s  delivered %10.0f/s  receipts %10.0f/s  backlog %llu  "
                "unreceipted %llu\n",
                (double)(now - r->t_start) / 1e9, phase, (double)(tt.sent - prev->sent) / dt,
                (double)(tt.unique - prev->unique) / dt,
                (double)(tt.receipts - prev->receipts) / dt,
                (unsigned long long)(tt.expected > tt.unique ? tt.expected - tt.unique : 0),
                (unsigned long long)(tt.receipts_asked - tt.receipts));
    else if (!r->cfg.quiet)
        fprintf(stderr, "[%6.1fs] %-7s sent %10.0f/s  delivered %10.0f/s  backlog %llu\n",
                (double)(now - r->t_start) / 1e9, phase, (double)(tt.sent - prev->sent) / dt,
                (double)(tt.unique - prev->unique) / dt,
                (unsigned long long)(tt.expected > tt.unique ? tt.expected - tt.unique : 0));
    *prev = tt;
    *last = now;
}

static bool failed(struct stp_bench_run *r)
{
    /* acquire pairs with the release in stp_bench_fail: fail_msg is complete */
    return atomic_load_explicit(&r->failed, memory_order_acquire) == 1;
}

static int wait_ready(struct stp_bench_run *r)
{
    uint64_t deadline = uv_hrtime() + r->cfg.connect_timeout_ns;
    while (!failed(r) && !interrupted) {
        unsigned ready = atomic_load(&r->ready);
        if (ready == r->total_conns)
            return 0;
        if (uv_hrtime() > deadline) {
            stp_bench_fail(r, "timed out after %.1f s: %u of %u connections got CONNECTED%s",
                           (double)r->cfg.connect_timeout_ns / 1e9, ready, r->total_conns,
                           r->cfg.consumers ? " (and their SUBSCRIBE receipt)" : "");
            return STP_ETIMEOUT;
        }
        sleep_ns(POLL_NS);
    }
    return STP_ECLOSED;
}

static void publish_start(struct stp_bench_run *r)
{
    r->t_start = uv_hrtime() + 20 * UINT64_C(1000000);
    r->t_warm_end = r->t_start + r->cfg.warmup_ns;
    r->t_measure_end = r->t_warm_end + r->cfg.duration_ns;
    /* release: workers that see started=1 see the times above */
    atomic_store_explicit(&r->started, 1, memory_order_release);
    for (unsigned i = 0; i < r->nthreads; i++)
        stp_bench_thread_wake(&r->threads[i]);
}

/* Measure, then drain: returns when everything arrived or the drain ended. */
static void run_phases(struct stp_bench_run *r, struct stp_bench_report *rep)
{
    struct totals prev = {0}, tt;
    uint64_t last = r->t_start, next_line = r->t_start + SEC;
    bool backlog_taken = false;
    while (!failed(r) && !interrupted) {
        sleep_ns(POLL_NS);
        uint64_t now = uv_hrtime();
        if (now >= next_line) {
            progress(r, now, &prev, &last);
            next_line += SEC;
        }
        if (now < r->t_measure_end)
            continue;
        gather(r, &tt);
        if (!backlog_taken) {
            rep->backlog_at_end = tt.expected > tt.unique ? tt.expected - tt.unique : 0;
            backlog_taken = true;
        }
        rep->drain_ms = (double)(now - r->t_measure_end) / 1e6;
        /* done when everything sent arrived and every receipt asked for came back */
        if (tt.producers_done && tt.unique >= tt.expected && tt.receipts >= tt.receipts_asked) {
            rep->drained = true;
            return;
        }
        if (now - r->t_measure_end > r->cfg.drain_ns)
            return;
    }
}

static void stop_threads(struct stp_bench_run *r, unsigned spawned)
{
    atomic_store_explicit(&r->stop, 1, memory_order_release);
    for (unsigned i = 0; i < spawned; i++)
        stp_bench_thread_wake(&r->threads[i]);
    for (unsigned i = 0; i < spawned; i++)
        uv_thread_join(&r->threads[i].tid);
}

void stp_bench_report_fill(struct stp_bench_run *r, struct stp_bench_report *rep);

int stp_bench_run(struct stp_bench_run *r, const struct stp_bench_config *cfg,
                  struct stp_bench_report *rep)
{
    memset(r, 0, sizeof(*r));
    memset(rep, 0, sizeof(*rep));
    r->cfg = *cfg;
    rep->cfg = &r->cfg;
    r->run_id = (uint32_t)(uv_hrtime() ^ ((uint64_t)getpid() << 16));
    raise_fd_limit();
    int rc = endpoints_init(r, rep->error, sizeof(rep->error));
    if (rc) {
        rep->failed = true;
        return 0;
    }
    rc = build(r);
    if (rc)
        return rc;
    unsigned spawned = 0;
    for (; spawned < r->nthreads; spawned++)
        if ((rc = stp_bench_thread_spawn(&r->threads[spawned])) != 0)
            break;
    if (rc == 0 && wait_ready(r) == 0) {
        publish_start(r);
        run_phases(r, rep);
    }
    if (interrupted && !failed(r))
        stp_bench_fail(r, "interrupted");
    stop_threads(r, spawned);
    stp_bench_report_fill(r, rep);
    return rc;
}
