/*
 * journal_io.c - journal-io-bench: which way of writing and fdatasync'ing the
 * durable journal (issue 12) keeps a worker's event loop free?
 *
 * One uv loop (this thread) plays a broker worker under persistent load: a
 * 1 ms timer appends journal records (real MSG records, stp_jrec_encode with
 * its CRC-32C) at a fixed offered rate into the open batch, and at the flush
 * point (the end of that tick, and uv_check after a completion) the batch is
 * handed to a back-end unless one is in flight (group commit: at most one
 * batch in flight, the next one grows meanwhile):
 *
 *   thread  a writer thread of our own: mutex + condvar handoff, write() +
 *           fdatasync(), completion through uv_async_send
 *   pool    libuv's thread pool: uv_queue_work, write() + fdatasync() in the
 *           work callback, completion in after_work
 *   uring   io_uring (liburing): a write SQE linked to an fdatasync SQE,
 *           completions reaped on the loop from an eventfd registered with
 *           the ring and watched by uv_poll
 *   null    no I/O: the batch completes at once (what the loop costs without
 *           a journal; a baseline, not a candidate)
 *
 * Optional load on libuv's thread pool, as logins put there in Stampede
 * (argon2id, m=19456 KiB, t=2, p=1): every PERIOD ms, N hashes are queued
 * with uv_queue_work. They stop (queued ones cancelled) when the producer
 * stops.
 *
 * Measured per run: records/s committed (records / time from the first
 * append to the last completion: a back-end that falls behind drains longer
 * after the producer stops), commit latency p50/p99/max (from the append to
 * the completion seen on the loop), batches/s, the loop thread's CPU time
 * per record (CLOCK_THREAD_CPUTIME_ID) and per handoff (the loop's CPU in the
 * call that passes a batch on, ~1.4 us of it the two clock reads), the
 * process's CPU per record
 * (getrusage: includes writer, pool and io-wq threads, and the argon2 load),
 * and the producer's lag (how late the loop appended a record against its
 * schedule: a stalled loop shows here, not in the commit latency).
 */
#include "store/journal.h"

#include <argon2.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#ifdef JIO_HAVE_URING
#include <liburing.h>
#include <sys/eventfd.h>
#endif

enum backend { BK_THREAD, BK_POOL, BK_URING, BK_NULL, BK_COUNT };
static const char *const backend_names[BK_COUNT] = {"thread", "pool", "uring", "null"};

/* A load on the thread pool: n argon2id hashes every period_ms. */
struct load {
    const char *name;
    unsigned n;
    unsigned period_ms;
};

#define MAX_LIST 8

struct opts {
    enum backend backends[BK_COUNT];
    size_t nbackends;
    uint64_t rates[MAX_LIST];
    size_t nrates;
    struct load loads[MAX_LIST];
    size_t nloads;
    unsigned reps;
    double seconds;
    size_t rec_size;
    const char *file;
    bool markdown;
};

/* Records appended at time t (one timer tick's chunk). */
struct chunk {
    uint64_t t;
    uint32_t n;
};

struct batch {
    uint8_t *buf;
    size_t len, cap;
    struct chunk *chunks;
    size_t nchunks, ccap;
    uint64_t records;
    int err; /* 0 or -errno, set by the back-end */
};

/* A latency of n records. */
struct sample {
    uint64_t ns;
    uint64_t n;
};

struct samples {
    struct sample *s;
    size_t len, cap;
};

struct run;

struct hash_job {
    uv_work_t req;
    struct run *r;
    uint64_t ns; /* the hash's wall time */
    bool done;
};

struct result {
    double rec_s, p50_ms, p99_ms, max_ms, batches_s, batch_kib, loop_ns, proc_ns, lag99_ms,
        lagmax_ms, drain_ms, hash_ms, submit_us;
    uint64_t hashes, committed;
};

struct run {
    uv_loop_t loop;
    enum backend bk;
    uint64_t rate;
    size_t rec_size;
    int fd;
    uint64_t off;
    struct batch b[2];
    struct batch *open, *flight;
    uv_timer_t tick;
    uv_check_t check;
    uv_timer_t load_timer;
    uv_timer_t watchdog;
    struct load load;
    bool producing, closing;
    uint64_t t0, t_end, t_last;
    uint64_t produced, committed, batches, lsn;
    uint8_t tail[4096];
    size_t tail_len;
    struct samples lat, lag;
    int err;

    /* thread */
    uv_thread_t th;
    uv_mutex_t mu;
    uv_cond_t cv;
    struct batch *job, *job_done;
    bool quit;
    uv_async_t async;

    /* pool */
    uv_work_t wreq;

#ifdef JIO_HAVE_URING
    struct io_uring ring;
    int efd;
    uv_poll_t poll;
    int uring_left; /* CQEs still to come for the batch in flight */
    int uring_err;
#endif

    /* load */
    struct hash_job **jobs;
    size_t njobs, jobs_cap;
    uint64_t hashes_done, hash_ns;
    uint64_t submit_ns; /* loop thread CPU spent handing batches over */
};

static void die(const char *what, int err)
{
    fprintf(stderr, "journal-io-bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        die("realloc", ENOMEM);
    return p;
}

static void samples_add(struct samples *s, uint64_t ns, uint64_t n)
{
    if (s->len == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->s = xrealloc(s->s, s->cap * sizeof(*s->s));
    }
    s->s[s->len++] = (struct sample){ns, n};
}

static int cmp_sample(const void *a, const void *b)
{
    const struct sample *x = a, *y = b;
    return x->ns < y->ns ? -1 : x->ns > y->ns;
}

/* The q-quantile (0..1) of the weighted samples, in ms; sorts them. */
static double quantile_ms(struct samples *s, double q)
{
    if (s->len == 0)
        return 0;
    qsort(s->s, s->len, sizeof(*s->s), cmp_sample);
    uint64_t total = 0;
    for (size_t i = 0; i < s->len; i++)
        total += s->s[i].n;
    uint64_t want = (uint64_t)(q * (double)total), acc = 0;
    for (size_t i = 0; i < s->len; i++) {
        acc += s->s[i].n;
        if (acc > want)
            return (double)s->s[i].ns / 1e6;
    }
    return (double)s->s[s->len - 1].ns / 1e6;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t process_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

/* --- the batch --- */

static void batch_reset(struct batch *b)
{
    b->len = 0;
    b->nchunks = 0;
    b->records = 0;
    b->err = 0;
}

static void batch_free(struct batch *b)
{
    free(b->buf);
    free(b->chunks);
}

static int write_sync(int fd, uint64_t off, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return fdatasync(fd) == 0 ? 0 : -errno;
}

static void maybe_finish(struct run *r);

/* The batch in flight is on disk (or failed): on the loop. */
static void complete(struct run *r)
{
    struct batch *b = r->flight;
    uint64_t now = uv_hrtime();
    if (b->err != 0 && r->err == 0)
        r->err = b->err;
    for (size_t i = 0; i < b->nchunks; i++)
        samples_add(&r->lat, now - b->chunks[i].t, b->chunks[i].n);
    r->off += b->len;
    r->committed += b->records;
    r->batches++;
    r->t_last = now;
    batch_reset(b);
    r->flight = NULL;
    maybe_finish(r);
}

/* --- (a) a writer thread of our own --- */

static void writer_main(void *arg)
{
    struct run *r = arg;
    uv_mutex_lock(&r->mu);
    for (;;) {
        while (!r->job && !r->quit)
            uv_cond_wait(&r->cv, &r->mu);
        struct batch *b = r->job;
        if (!b)
            break;
        uint64_t off = r->off;
        uv_mutex_unlock(&r->mu);
        b->err = write_sync(r->fd, off, b->buf, b->len);
        uv_mutex_lock(&r->mu);
        r->job = NULL;
        r->job_done = b;
        uv_mutex_unlock(&r->mu);
        uv_async_send(&r->async);
        uv_mutex_lock(&r->mu);
    }
    uv_mutex_unlock(&r->mu);
}

static void on_writer_done(uv_async_t *h)
{
    struct run *r = h->data;
    uv_mutex_lock(&r->mu);
    struct batch *b = r->job_done;
    r->job_done = NULL;
    uv_mutex_unlock(&r->mu);
    if (b)
        complete(r);
}

/* --- (b) libuv's thread pool --- */

static void pool_work(uv_work_t *req)
{
    struct run *r = req->data;
    r->flight->err = write_sync(r->fd, r->off, r->flight->buf, r->flight->len);
}

static void pool_after(uv_work_t *req, int status)
{
    struct run *r = req->data;
    if (status != 0)
        r->flight->err = status;
    complete(r);
}

/* --- (c) io_uring --- */

#ifdef JIO_HAVE_URING
static void on_ring(uv_poll_t *h, int status, int events)
{
    struct run *r = h->data;
    uint64_t v;
    while (read(r->efd, &v, sizeof(v)) > 0) {
    }
    struct io_uring_cqe *cqe;
    while (r->uring_left > 0 && io_uring_peek_cqe(&r->ring, &cqe) == 0) {
        int res = cqe->res;
        uint64_t what = cqe->user_data;
        io_uring_cqe_seen(&r->ring, cqe);
        if (what == 1 && res >= 0 && (size_t)res != r->flight->len)
            res = -EIO; /* a short write (not resubmitted here: it does not happen on ext4) */
        if (res < 0 && r->uring_err == 0)
            r->uring_err = res;
        if (--r->uring_left == 0) {
            r->flight->err = r->uring_err;
            complete(r);
        }
    }
}

static int uring_submit(struct run *r, struct batch *b)
{
    struct io_uring_sqe *w = io_uring_get_sqe(&r->ring);
    struct io_uring_sqe *s = io_uring_get_sqe(&r->ring);
    if (!w || !s)
        return -EBUSY;
    io_uring_prep_write(w, r->fd, b->buf, (unsigned)b->len, r->off);
    w->flags |= IOSQE_IO_LINK;
    w->user_data = 1;
    io_uring_prep_fsync(s, r->fd, IORING_FSYNC_DATASYNC);
    s->user_data = 2;
    r->uring_left = 2;
    r->uring_err = 0;
    int rc = io_uring_submit(&r->ring);
    return rc == 2 ? 0 : rc < 0 ? rc : -EIO;
}
#endif

/* --- the loop side: flush at each turn, finish --- */

/* The flush point: hand the open batch over unless one is in flight. */
static void flush(struct run *r)
{
    if (r->flight || r->open->len == 0)
        return;
    struct batch *b = r->open;
    r->open = b == &r->b[0] ? &r->b[1] : &r->b[0];
    r->flight = b;
    uint64_t c0 = thread_cpu_ns();
    switch (r->bk) {
    case BK_THREAD:
        uv_mutex_lock(&r->mu);
        r->job = b;
        uv_cond_signal(&r->cv);
        uv_mutex_unlock(&r->mu);
        break;
    case BK_POOL: {
        int rc = uv_queue_work(&r->loop, &r->wreq, pool_work, pool_after);
        if (rc != 0)
            die("uv_queue_work", rc);
        break;
    }
    case BK_URING: {
#ifdef JIO_HAVE_URING
        int rc = uring_submit(r, b);
        if (rc != 0)
            die("io_uring_submit", rc);
#endif
        break;
    }
    default:
        complete(r);
        break;
    }
    r->submit_ns += thread_cpu_ns() - c0;
}

/* After the poll phase: a completion seen there lets the next batch go. */
static void on_check(uv_check_t *h)
{
    flush(h->data);
}

static void on_close_noop(uv_handle_t *h)
{
}

static void maybe_finish(struct run *r)
{
    if (r->producing || r->closing || r->flight || r->open->len != 0)
        return;
    r->closing = true;
    uv_close((uv_handle_t *)&r->tick, on_close_noop);
    uv_close((uv_handle_t *)&r->check, on_close_noop);
    uv_close((uv_handle_t *)&r->load_timer, on_close_noop);
    uv_close((uv_handle_t *)&r->watchdog, on_close_noop);
    if (r->bk == BK_THREAD)
        uv_close((uv_handle_t *)&r->async, on_close_noop);
#ifdef JIO_HAVE_URING
    if (r->bk == BK_URING)
        uv_close((uv_handle_t *)&r->poll, on_close_noop);
#endif
}

/* --- the thread-pool load --- */

static void hash_work(uv_work_t *req)
{
    struct hash_job *j = req->data;
    uint64_t t = uv_hrtime();
    static const char pwd[] = "correct horse battery staple";
    static const uint8_t salt[16] = "stampede-salt-16";
    uint8_t out[32];
    if (argon2id_hash_raw(2, 19456, 1, pwd, sizeof(pwd) - 1, salt, sizeof(salt), out,
                          sizeof(out)) != ARGON2_OK)
        abort();
    j->ns = uv_hrtime() - t;
}

static void hash_after(uv_work_t *req, int status)
{
    struct hash_job *j = req->data;
    if (status == 0) {
        j->r->hashes_done++;
        j->r->hash_ns += j->ns;
    }
    j->done = true;
}

static void on_load(uv_timer_t *h)
{
    struct run *r = h->data;
    for (unsigned i = 0; i < r->load.n; i++) {
        struct hash_job *j = calloc(1, sizeof(*j));
        if (!j)
            die("calloc", ENOMEM);
        j->r = r;
        j->req.data = j;
        if (r->njobs == r->jobs_cap) {
            r->jobs_cap = r->jobs_cap ? r->jobs_cap * 2 : 256;
            r->jobs = xrealloc(r->jobs, r->jobs_cap * sizeof(*r->jobs));
        }
        r->jobs[r->njobs++] = j;
        int rc = uv_queue_work(&r->loop, &j->req, hash_work, hash_after);
        if (rc != 0)
            die("uv_queue_work", rc);
    }
}

static void stop_load(struct run *r)
{
    uv_timer_stop(&r->load_timer);
    for (size_t i = 0; i < r->njobs; i++)
        if (!r->jobs[i]->done)
            uv_cancel((uv_req_t *)&r->jobs[i]->req); /* fails for a running one: fine */
}

/* --- the producer --- */

static void append_records(struct run *r, uint64_t n, uint64_t now)
{
    struct batch *b = r->open;
    for (uint64_t i = 0; i < n; i++) {
        r->lsn++;
        struct stp_jrec rec = {
            .type = STP_JREC_MSG,
            .lsn = r->lsn,
            .key = r->lsn,
            .body_len = (uint32_t)(r->tail_len / 2),
            .queue = "bench.q",
            .queue_len = 7,
            .tail = (const char *)r->tail,
            .tail_len = (uint32_t)r->tail_len,
        };
        memcpy(r->tail, &r->lsn, sizeof(r->lsn)); /* so that every record differs */
        size_t sz = stp_jrec_size(&rec);
        if (b->len + sz > b->cap) {
            b->cap = b->cap ? b->cap * 2 : 1u << 20;
            while (b->len + sz > b->cap)
                b->cap *= 2;
            b->buf = xrealloc(b->buf, b->cap);
        }
        stp_jrec_encode(&rec, b->buf + b->len);
        b->len += sz;
    }
    if (b->nchunks == b->ccap) {
        b->ccap = b->ccap ? b->ccap * 2 : 256;
        b->chunks = xrealloc(b->chunks, b->ccap * sizeof(*b->chunks));
    }
    b->chunks[b->nchunks++] = (struct chunk){now, (uint32_t)n};
    b->records += n;
    r->produced += n;
}

static void on_tick(uv_timer_t *h)
{
    struct run *r = h->data;
    uint64_t now = uv_hrtime();
    uint64_t upto = now < r->t_end ? now : r->t_end;
    uint64_t due = (uint64_t)((double)(upto - r->t0) * (double)r->rate / 1e9);
    if (due > r->produced) {
        /* when the first record of this chunk was due */
        uint64_t sched = r->t0 + (uint64_t)((double)(r->produced + 1) * 1e9 / (double)r->rate);
        samples_add(&r->lag, now > sched ? now - sched : 0, 1);
        append_records(r, due - r->produced, now);
    }
    /* The tick is this turn's producer: its appends go now, not after the
     * poll phase that may sleep until the next tick (in the broker the
     * appends happen in read callbacks, and the flush point follows them). */
    flush(r);
    if (now >= r->t_end) {
        r->producing = false;
        uv_timer_stop(&r->tick);
        stop_load(r);
        maybe_finish(r);
    }
}

static void on_watchdog(uv_timer_t *h)
{
    fprintf(stderr, "journal-io-bench: the back-end has not drained 30 s after the end\n");
    exit(1);
}

/* --- one run --- */

static void run_one(const struct opts *o, enum backend bk, uint64_t rate, const struct load *ld,
                    struct result *res)
{
    struct run *r = calloc(1, sizeof(*r));
    if (!r)
        die("calloc", ENOMEM);
    r->bk = bk;
    r->rate = rate;
    r->load = *ld;
    r->open = &r->b[0];
    size_t fixed = STP_JREC_HEADER + STP_JREC_MSG_FIXED + 7;
    r->tail_len = o->rec_size > fixed + 8 ? o->rec_size - fixed : 8;
    if (r->tail_len > sizeof(r->tail))
        r->tail_len = sizeof(r->tail);
    for (size_t i = 0; i < r->tail_len; i++)
        r->tail[i] = (uint8_t)('a' + i % 26);

    r->fd = open(o->file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (r->fd < 0)
        die(o->file, errno);
    int rc = uv_loop_init(&r->loop);
    if (rc != 0)
        die("uv_loop_init", rc);
    uv_timer_init(&r->loop, &r->tick);
    uv_check_init(&r->loop, &r->check);
    uv_timer_init(&r->loop, &r->load_timer);
    uv_timer_init(&r->loop, &r->watchdog);
    r->tick.data = r->check.data = r->load_timer.data = r->watchdog.data = r;
    r->wreq.data = r;

    if (bk == BK_THREAD) {
        uv_mutex_init(&r->mu);
        uv_cond_init(&r->cv);
        uv_async_init(&r->loop, &r->async, on_writer_done);
        r->async.data = r;
        if ((rc = uv_thread_create(&r->th, writer_main, r)) != 0)
            die("uv_thread_create", rc);
    }
#ifdef JIO_HAVE_URING
    if (bk == BK_URING) {
        if ((rc = io_uring_queue_init(8, &r->ring, 0)) != 0)
            die("io_uring_queue_init", rc);
        r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (r->efd < 0)
            die("eventfd", errno);
        if ((rc = io_uring_register_eventfd(&r->ring, r->efd)) != 0)
            die("io_uring_register_eventfd", rc);
        uv_poll_init(&r->loop, &r->poll, r->efd);
        r->poll.data = r;
        uv_poll_start(&r->poll, UV_READABLE, on_ring);
    }
#endif

    uint64_t cpu0 = thread_cpu_ns(), pcpu0 = process_cpu_ns();
    r->producing = true;
    r->t0 = uv_hrtime();
    r->t_end = r->t0 + (uint64_t)(o->seconds * 1e9);
    r->t_last = r->t0;
    uv_timer_start(&r->tick, on_tick, 1, 1);
    uv_check_start(&r->check, on_check);
    if (ld->n > 0)
        uv_timer_start(&r->load_timer, on_load, 0, ld->period_ms);
    uv_timer_start(&r->watchdog, on_watchdog, (uint64_t)(o->seconds * 1000) + 30000, 0);
    uv_unref((uv_handle_t *)&r->watchdog);
    uv_update_time(&r->loop);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uint64_t cpu = thread_cpu_ns() - cpu0, pcpu = process_cpu_ns() - pcpu0;

    if (bk == BK_THREAD) {
        uv_mutex_lock(&r->mu);
        r->quit = true;
        uv_cond_signal(&r->cv);
        uv_mutex_unlock(&r->mu);
        uv_thread_join(&r->th);
        uv_cond_destroy(&r->cv);
        uv_mutex_destroy(&r->mu);
    }
#ifdef JIO_HAVE_URING
    if (bk == BK_URING) {
        io_uring_queue_exit(&r->ring);
        close(r->efd);
    }
#endif
    if (uv_loop_close(&r->loop) != 0)
        die("uv_loop_close", EBUSY);
    close(r->fd);
    unlink(o->file);
    if (r->err != 0)
        die("journal write", r->err);
    if (r->committed != r->produced)
        die("records lost", EIO);

    double secs = (double)(r->t_last - r->t0) / 1e9;
    *res = (struct result){
        .rec_s = (double)r->committed / secs,
        .p50_ms = quantile_ms(&r->lat, 0.50),
        .p99_ms = quantile_ms(&r->lat, 0.99),
        .max_ms = quantile_ms(&r->lat, 1.0),
        .batches_s = (double)r->batches / secs,
        .batch_kib = r->batches ? (double)r->off / 1024.0 / (double)r->batches : 0,
        .loop_ns = (double)cpu / (double)r->committed,
        .proc_ns = (double)pcpu / (double)r->committed,
        .lag99_ms = quantile_ms(&r->lag, 0.99),
        .lagmax_ms = quantile_ms(&r->lag, 1.0),
        .drain_ms = r->t_last > r->t_end ? (double)(r->t_last - r->t_end) / 1e6 : 0,
        .hashes = r->hashes_done,
        .submit_us = r->batches ? (double)r->submit_ns / 1e3 / (double)r->batches : 0,
        .hash_ms = r->hashes_done ? (double)r->hash_ns / 1e6 / (double)r->hashes_done : 0,
        .committed = r->committed,
    };
    for (size_t i = 0; i < r->njobs; i++)
        free(r->jobs[i]);
    free(r->jobs);
    free(r->lat.s);
    free(r->lag.s);
    batch_free(&r->b[0]);
    batch_free(&r->b[1]);
    free(r);
}

/* --- options, the sweep and the report --- */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: journal-io-bench [options]\n"
        "  --backend LIST   thread,pool,uring,null (thread,pool,uring%s)\n"
        "  --rate LIST      offered records/s (100000,200000,400000)\n"
        "  --load LIST      thread-pool load: none, or N/PERIOD_MS argon2id hashes\n"
        "                   (m=19456 KiB, t=2, p=1) queued every PERIOD_MS (none,16/500,16/100)\n"
        "  --reps N         runs of each configuration; medians reported (3)\n"
        "  --seconds S      producing time of a run (3)\n"
        "  --size BYTES     encoded record size (200)\n"
        "  --file PATH      the journal file, on the disk under test\n"
        "                   (journal-io-bench.dat in the current directory)\n"
        "  --markdown       medians as a Markdown table\n",
#ifdef JIO_HAVE_URING
        ""
#else
        "; uring not built: no liburing"
#endif
    );
}

static size_t split(char *s, char **out, size_t max)
{
    size_t n = 0;
    for (char *t = strtok(s, ","); t && n < max; t = strtok(NULL, ","))
        out[n++] = t;
    return n;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.reps = 3, .seconds = 3, .rec_size = 200, .file = "journal-io-bench.dat"};
#ifdef JIO_HAVE_URING
    const char *backends = "thread,pool,uring";
#else
    const char *backends = "thread,pool";
#endif
    const char *rates = "100000,200000,400000", *loads = "none,16/500,16/100";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--markdown")) {
            o->markdown = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!v) {
            usage(stderr);
            exit(2);
        }
        i++;
        if (!strcmp(a, "--backend"))
            backends = v;
        else if (!strcmp(a, "--rate"))
            rates = v;
        else if (!strcmp(a, "--load"))
            loads = v;
        else if (!strcmp(a, "--reps"))
            o->reps = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seconds"))
            o->seconds = strtod(v, NULL);
        else if (!strcmp(a, "--size"))
            o->rec_size = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--file"))
            o->file = v;
        else {
            usage(stderr);
            exit(2);
        }
    }
    char *list[MAX_LIST];
    char *bs = strdup(backends), *rs = strdup(rates), *ls = strdup(loads);
    size_t n = split(bs, list, MAX_LIST);
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < BK_COUNT && strcmp(list[i], backend_names[k]) != 0)
            k++;
        if (k == BK_COUNT) {
            fprintf(stderr, "journal-io-bench: unknown back-end %s\n", list[i]);
            exit(2);
        }
#ifndef JIO_HAVE_URING
        if (k == BK_URING) {
            fprintf(stderr, "journal-io-bench: built without liburing: no uring back-end\n");
            exit(2);
        }
#endif
        if (o->nbackends < BK_COUNT)
            o->backends[o->nbackends++] = (enum backend)k;
    }
    n = split(rs, list, MAX_LIST);
    for (size_t i = 0; i < n; i++)
        o->rates[o->nrates++] = strtoull(list[i], NULL, 10);
    n = split(ls, list, MAX_LIST);
    for (size_t i = 0; i < n; i++) {
        struct load *ld = &o->loads[o->nloads++];
        ld->name = strdup(list[i]);
        if (strcmp(list[i], "none") != 0 &&
            (sscanf(list[i], "%u/%u", &ld->n, &ld->period_ms) != 2 || ld->period_ms == 0)) {
            fprintf(stderr, "journal-io-bench: bad load %s (none or N/PERIOD_MS)\n", list[i]);
            exit(2);
        }
    }
    free(bs);
    free(rs);
    free(ls);
    if (o->nbackends == 0 || o->nrates == 0 || o->nloads == 0 || o->reps == 0 || o->seconds <= 0 ||
        o->seconds > 60) {
        usage(stderr);
        exit(2);
    }
    for (size_t i = 0; i < o->nrates; i++)
        if (o->rates[i] == 0) {
            usage(stderr);
            exit(2);
        }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median, min and max of field f over n results. */
static void stat3(const struct result *rs, size_t n, size_t f, double *med, double *lo, double *hi)
{
    double v[64];
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++)
        memcpy(&v[i], (const char *)&rs[i] + f, sizeof(double));
    qsort(v, n, sizeof(double), cmp_double);
    *med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    *lo = v[0];
    *hi = v[n - 1];
}

static void print_run(enum backend bk, uint64_t rate, const struct load *ld, unsigned rep,
                      const struct result *x)
{
    double la[1] = {0};
    (void)getloadavg(la, 1); /* the machine is shared: how busy it was */
    printf("run %-6s rate %6" PRIu64 " load %-7s rep %u: %8.0f rec/s  p50 %7.2f  p99 %7.2f  "
           "max %7.2f ms  %5.0f batch/s (%6.1f KiB)  loop %5.0f ns/rec (handoff %5.1f us/batch)  "
           "proc %6.0f ns/rec  "
           "lag p99 %5.2f max %6.2f ms  drain %6.1f ms  hashes %" PRIu64
           " (%.1f ms each)  loadavg %.2f\n",
           backend_names[bk], rate, ld->name, rep + 1, x->rec_s, x->p50_ms, x->p99_ms, x->max_ms,
           x->batches_s, x->batch_kib, x->loop_ns, x->submit_us, x->proc_ns, x->lag99_ms,
           x->lagmax_ms, x->drain_ms, x->hashes, x->hash_ms, la[0]);
    fflush(stdout);
}

#define F(name) offsetof(struct result, name)

int main(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o);
    size_t ncfg = o.nbackends * o.nrates * o.nloads;
    struct result *all = calloc(ncfg * o.reps, sizeof(*all));
    if (!all)
        die("calloc", ENOMEM);

    /* Interleaved: every configuration once per round, so that a noisy
     * neighbour on this shared machine hits all of them alike. */
    for (unsigned rep = 0; rep < o.reps; rep++)
        for (size_t l = 0; l < o.nloads; l++)
            for (size_t ri = 0; ri < o.nrates; ri++)
                for (size_t bi = 0; bi < o.nbackends; bi++) {
                    size_t cfg = (l * o.nrates + ri) * o.nbackends + bi;
                    struct result *x = &all[cfg * o.reps + rep];
                    run_one(&o, o.backends[bi], o.rates[ri], &o.loads[l], x);
                    print_run(o.backends[bi], o.rates[ri], &o.loads[l], rep, x);
                }

    static const struct {
        const char *title;
        size_t off;
        const char *fmt;
    } cols[] = {
        /* clang-format off */
        {"rec/s", F(rec_s), "%.0f"},
        {"p50 ms", F(p50_ms), "%.2f"},
        {"p99 ms", F(p99_ms), "%.2f"},
        {"max ms", F(max_ms), "%.2f"},
        {"batches/s", F(batches_s), "%.0f"},
        {"loop ns/rec", F(loop_ns), "%.0f"},
        {"handoff us/batch", F(submit_us), "%.1f"},
        {"proc ns/rec", F(proc_ns), "%.0f"},
        {"lag max ms", F(lagmax_ms), "%.2f"},
        /* clang-format on */
    };
    size_t ncols = sizeof(cols) / sizeof(cols[0]);
    printf("\nmedians of %u runs (min-max for p99 and max), %g s each, %zu-byte records\n", o.reps,
           o.seconds, o.rec_size);
    if (o.markdown) {
        printf("\n| pool load | offered rec/s | back-end |");
        for (size_t c = 0; c < ncols; c++)
            printf(" %s |", cols[c].title);
        printf("\n|---|---|---|");
        for (size_t c = 0; c < ncols; c++)
            printf("---:|");
        printf("\n");
    }
    for (size_t l = 0; l < o.nloads; l++)
        for (size_t ri = 0; ri < o.nrates; ri++)
            for (size_t bi = 0; bi < o.nbackends; bi++) {
                size_t cfg = (l * o.nrates + ri) * o.nbackends + bi;
                const struct result *rs = &all[cfg * o.reps];
                const char *bn = backend_names[o.backends[bi]];
                if (o.markdown)
                    printf("| %s | %" PRIu64 " | %s |", o.loads[l].name, o.rates[ri], bn);
                else
                    printf("%-7s %7" PRIu64 " %-6s", o.loads[l].name, o.rates[ri], bn);
                for (size_t c = 0; c < ncols; c++) {
                    double med, lo, hi;
                    stat3(rs, o.reps, cols[c].off, &med, &lo, &hi);
                    char buf[64];
                    int k = snprintf(buf, sizeof(buf), cols[c].fmt, med);
                    if ((cols[c].off == F(p99_ms) || cols[c].off == F(max_ms)) && o.reps > 1)
                        snprintf(buf + k, sizeof(buf) - (size_t)k, " (%.1f-%.1f)", lo, hi);
                    if (o.markdown)
                        printf(" %s |", buf);
                    else
                        printf("  %s=%s", cols[c].title, buf);
                }
                printf("\n");
            }
    free(all);
    return 0;
}
