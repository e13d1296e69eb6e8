/*
 * journal.c - the journal at run time, loop side: appends into the open
 * batch, the handoff to the writer thread (writer.c) and what the loop
 * does when it reports back (on_synced, on_failed, probing, on_recovered).
 *
 * Double buffering: j->open takes appends while j->flight is with the
 * writer; at a flush with the writer idle they swap. The async handle is
 * referenced only while a batch is in flight and the retry timer runs only
 * while the journal is failed, so an idle journal does not keep the loop
 * alive. No file is touched here after open, except in stop (which waits
 * for the writer).
 */
#include "journal_int.h"

#include "stampede/array.h"
#include "stampede/error.h"
#include "stampede/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SEGMENT_BYTES ((size_t)64 << 20)
#define DEFAULT_RETRY_MS 1000u
#define BATCH_KEEP_BYTES ((size_t)16 << 20) /* a larger batch buffer is freed after use */

static void batch_reset(struct jbatch *b)
{
    if (b->buf.cap > BATCH_KEEP_BYTES)
        stp_buf_free(&b->buf);
    stp_buf_reset(&b->buf);
    b->first = b->last = 0;
    b->nrolls = b->nunlinks = 0;
    b->probe = false;
    b->err = 0;
}

static void batch_free(struct jbatch *b)
{
    stp_buf_free(&b->buf);
    free(b->rolls);
    free(b->unlinks);
}

/* --- handoff --- */

static void handover(struct stp_journal *j)
{
    struct jbatch *b = j->open;
    j->open = j->flight;
    j->flight = b;
    j->busy = true;
    uv_ref((uv_handle_t *)&j->async);
    stp_jstat_add(&j->stats.batches, 1);
    uv_mutex_lock(&j->mu);
    j->job = b;
    uv_cond_signal(&j->cond_job);
    uv_mutex_unlock(&j->mu);
}

/* The dead segments go with batch b (whose unlink list is empty). */
static void attach_dead(struct stp_journal *j, struct jbatch *b)
{
    uint64_t *v = b->unlinks;
    size_t cap = b->unlinks_cap;
    b->unlinks = j->dead;
    b->unlinks_cap = j->dead_cap;
    b->nunlinks = j->ndead;
    j->dead = v;
    j->dead_cap = cap;
    j->ndead = 0;
}

/* A failed batch's unlinks wait again, before the ones reaped since. */
static void requeue_dead(struct stp_journal *j, const struct jbatch *b)
{
    size_t n = b->nunlinks;
    if (n == 0)
        return;
    if (STP_ARRAY_RESERVE(j->dead, j->dead_cap, j->ndead + n) != 0) {
        stp_warn("journal %s: out of memory: %zu dead segments stay until a restart", j->dir, n);
        return;
    }
    memmove(j->dead + n, j->dead, j->ndead * sizeof(*j->dead));
    memcpy(j->dead, b->unlinks, n * sizeof(*j->dead));
    j->ndead += n;
}

void stp_journal_flush(struct stp_journal *j)
{
    if (j->failed || j->stopped)
        return;
    stp_jseg_reap(j);
    if (j->busy || (j->open->first == 0 && j->ndead == 0))
        return;
    attach_dead(j, j->open);
    handover(j);
}

/* --- appends --- */

/* Records from lsn on go to a new segment (in the loop's account and, at
 * the writer, from the batch's current length on). */
static int start_segment(struct stp_journal *j, struct jbatch *b, uint64_t lsn)
{
    if (STP_ARRAY_RESERVE(b->rolls, b->rolls_cap, b->nrolls + 1) != 0 ||
        stp_jseg_push(j, lsn, 0, 0) != 0)
        return STP_ENOMEM;
    b->rolls[b->nrolls++] = (struct jroll){b->buf.len, lsn};
    return 0;
}

uint64_t stp_journal_append(struct stp_journal *j, struct stp_jrec *r)
{
    if (j->failed || j->stopped)
        return 0;
    struct jbatch *b = j->open;
    size_t n = stp_jrec_size(r);
    if (n == 0 || stp_buf_reserve(&b->buf, n) != 0)
        return 0;
    uint64_t lsn = j->next_lsn;
    if (j->segs[j->nsegs - 1].bytes >= j->segment_bytes && start_segment(j, b, lsn) != 0)
        return 0;
    struct jseg *s = &j->segs[j->nsegs - 1];
    r->lsn = lsn;
    if (r->type == STP_JREC_MSG && r->key == 0)
        r->key = lsn;
    if (stp_jrec_pins(r->type)) {
        s->live++;
        s->msgs++;
    }
    stp_jrec_encode(r, (uint8_t *)b->buf.data + b->buf.len);
    b->buf.len += n;
    s->bytes += n;
    if (b->first == 0)
        b->first = lsn;
    b->last = lsn;
    j->next_lsn++;
    j->appended = lsn;
    stp_jstat_add(&j->stats.records, 1);
    return lsn;
}

/* --- the writer reports back --- */

static void on_retry(uv_timer_t *t);

static void batch_synced(struct stp_journal *j, struct jbatch *b)
{
    uint64_t last = b->last;
    batch_reset(b);
    if (last == 0)
        return; /* only unlinks */
    j->synced = last;
    if (j->on_synced)
        j->on_synced(j->ctx, last);
}

/* The batch in flight is lost, and with it the open one. */
static void batch_failed(struct stp_journal *j, struct jbatch *b)
{
    int err = b->err;
    uint64_t first = b->first, last = b->last;
    uint64_t ofirst = j->open->first, olast = j->open->last;
    requeue_dead(j, b);
    batch_reset(b);
    batch_reset(j->open);
    j->failed = true;
    stp_jstat_add(&j->stats.failures, olast ? 2 : 1);
    stp_error("journal %s: records %llu to %llu lost: %s; probing every %llu ms", j->dir,
              (unsigned long long)first, (unsigned long long)(olast ? olast : last),
              stp_strerror(err), (unsigned long long)j->retry_ms);
    uv_timer_start(&j->retry, on_retry, j->retry_ms, 0);
    if (j->on_failed) {
        j->on_failed(j->ctx, first, last, err);
        if (olast)
            j->on_failed(j->ctx, ofirst, olast, err);
    }
}

static void probe_done(struct stp_journal *j, struct jbatch *b)
{
    int err = b->err;
    uint64_t lsn = b->first, bytes = b->buf.len;
    batch_reset(b);
    if (err != 0) {
        if (!j->stopped)
            uv_timer_start(&j->retry, on_retry, j->retry_ms, 0);
        return;
    }
    (void)stp_jseg_push(j, lsn, 0, bytes); /* room reserved by on_retry */
    j->failed = false;
    stp_info("journal %s: writing again (new segment at lsn %llu)", j->dir,
             (unsigned long long)lsn);
    if (j->on_recovered)
        j->on_recovered(j->ctx);
}

/* The writer finished j->flight (done already taken). */
static void complete(struct stp_journal *j)
{
    struct jbatch *b = j->flight;
    j->busy = false;
    uv_unref((uv_handle_t *)&j->async);
    if (b->probe)
        probe_done(j, b);
    else if (b->err != 0)
        batch_failed(j, b);
    else
        batch_synced(j, b);
}

static bool take_done(struct stp_journal *j, bool wait)
{
    uv_mutex_lock(&j->mu);
    while (wait && !j->done)
        uv_cond_wait(&j->cond_done, &j->mu);
    bool done = j->done;
    j->done = false;
    uv_mutex_unlock(&j->mu);
    return done;
}

static void on_async(uv_async_t *a)
{
    struct stp_journal *j = a->data;
    if (!j->busy || !take_done(j, false))
        return;
    complete(j);
    stp_journal_flush(j); /* what was appended meanwhile */
}

/* Failed: hand the writer a NOOP in a new segment. */
static void on_retry(uv_timer_t *t)
{
    struct stp_journal *j = t->data;
    if (!j->failed || j->stopped || j->busy)
        return;
    struct jbatch *b = j->open;
    if (STP_ARRAY_RESERVE(j->segs, j->segs_cap, j->nsegs + 1) != 0 ||
        STP_ARRAY_RESERVE(b->rolls, b->rolls_cap, 1) != 0 ||
        stp_buf_reserve(&b->buf, STP_JREC_HEADER) != 0) {
        uv_timer_start(&j->retry, on_retry, j->retry_ms, 0);
        return;
    }
    struct stp_jrec r = {.type = STP_JREC_NOOP, .lsn = j->next_lsn++};
    stp_jrec_encode(&r, (uint8_t *)b->buf.data);
    b->buf.len = STP_JREC_HEADER;
    b->first = b->last = r.lsn;
    b->rolls[0] = (struct jroll){0, r.lsn};
    b->nrolls = 1;
    b->probe = true;
    handover(j);
}

/* --- open, stop, free --- */

/* mkdir -p dir, new directories 0700. */
static int make_dir(const char *dir)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return stp_err_from_errno(errno);
    char *p = strdup(dir);
    if (!p)
        return STP_ENOMEM;
    for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            break;
        *s = '/';
    }
    free(p);
    return mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : stp_err_from_errno(errno);
}

/* How many MSG records the existing segment `lsn` holds: as the replay
 * counted them (opts.seg_msgs), or read from the file. */
static uint64_t seg_msgs(struct stp_journal *j, uint64_t lsn)
{
    size_t lo = 0, hi = j->nseg_known;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (j->seg_lsns[mid] < lsn)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < j->nseg_known && j->seg_lsns[lo] == lsn)
        return j->seg_msgs[lo];
    return stp_seg_count_msgs(j->dirfd, lsn);
}

/* The segments already in the directory, oldest first, none of them at or
 * after next_lsn (empty ones there are removed). */
static int load_segments(struct stp_journal *j)
{
    struct stp_seg_file *v;
    size_t n;
    int rc = stp_seg_list(j->dirfd, &v, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char name[STP_SEG_NAME_SIZE];
        stp_seg_name(name, v[i].lsn);
        if (v[i].lsn >= j->next_lsn && v[i].size == 0) {
            rc = unlinkat(j->dirfd, name, 0) == 0 ? 0 : stp_err_from_errno(errno);
        } else if (v[i].lsn >= j->next_lsn) {
            stp_error("journal %s: segment %s is at or after lsn %llu (not replayed?)", j->dir,
                      name, (unsigned long long)j->next_lsn);
            rc = STP_EEXISTS;
        } else {
            rc = stp_jseg_push(j, v[i].lsn, seg_msgs(j, v[i].lsn), v[i].size);
            stp_jstat_add(&j->stats.segments, 1);
            stp_jstat_add(&j->stats.disk_bytes, v[i].size);
        }
    }
    free(v);
    return rc;
}

static int open_files(struct stp_journal *j)
{
    int rc = make_dir(j->dir);
    if (rc != 0)
        return rc;
    j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0)
        return stp_err_from_errno(errno);
    rc = load_segments(j);
    if (rc != 0)
        return rc;
    int fd = stp_journal_create_segment(j, j->next_lsn);
    if (fd < 0)
        return fd;
    j->cur_fd = fd;
    j->cur_lsn = j->next_lsn;
    return stp_jseg_push(j, j->next_lsn, 0, 0);
}

static int init_sync(struct stp_journal *j)
{
    if (uv_mutex_init(&j->mu) != 0)
        return STP_ENOMEM;
    if (uv_cond_init(&j->cond_job) == 0) {
        if (uv_cond_init(&j->cond_done) == 0)
            return 0;
        uv_cond_destroy(&j->cond_job);
    }
    uv_mutex_destroy(&j->mu);
    return STP_ENOMEM;
}

static void destroy_sync(struct stp_journal *j)
{
    uv_cond_destroy(&j->cond_done);
    uv_cond_destroy(&j->cond_job);
    uv_mutex_destroy(&j->mu);
}

static void stop_thread(struct stp_journal *j)
{
    uv_mutex_lock(&j->mu);
    j->quit = true;
    uv_cond_signal(&j->cond_job);
    uv_mutex_unlock(&j->mu);
    uv_thread_join(&j->thread);
}

/* The lock, the writer thread, the handles: all or none. */
static int start(struct stp_journal *j)
{
    int rc = init_sync(j);
    if (rc != 0)
        return rc;
    if (uv_thread_create(&j->thread, stp_journal_writer_main, j) != 0) {
        destroy_sync(j);
        return STP_ENOMEM;
    }
    if (uv_async_init(j->loop, &j->async, on_async) != 0) {
        stop_thread(j);
        destroy_sync(j);
        return STP_ENOMEM;
    }
    j->thread_started = true;
    j->async.data = j;
    uv_unref((uv_handle_t *)&j->async);
    uv_timer_init(j->loop, &j->retry);
    j->retry.data = j;
    return 0;
}

static void close_files(struct stp_journal *j)
{
    if (j->cur_fd >= 0)
        close(j->cur_fd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    j->cur_fd = j->dirfd = -1;
}

static void free_memory(struct stp_journal *j)
{
    batch_free(&j->batches[0]);
    batch_free(&j->batches[1]);
    free(j->segs);
    free(j->dead);
    free(j->dir);
    free(j);
}

int stp_journal_open(struct stp_journal **out, const struct stp_journal_opts *o)
{
    *out = NULL;
    if (!o->dir || !o->loop || o->next_lsn == 0)
        return STP_EINVAL;
    struct stp_journal *j = calloc(1, sizeof(*j));
    if (!j)
        return STP_ENOMEM;
    j->loop = o->loop;
    j->dir = strdup(o->dir);
    j->segment_bytes = o->segment_bytes ? o->segment_bytes : DEFAULT_SEGMENT_BYTES;
    j->retry_ms = o->retry_ms ? o->retry_ms : DEFAULT_RETRY_MS;
    j->ctx = o->ctx;
    j->on_synced = o->on_synced;
    j->on_failed = o->on_failed;
    j->on_recovered = o->on_recovered;
    j->next_lsn = o->next_lsn;
    j->appended = j->synced = o->next_lsn - 1;
    j->open = &j->batches[0];
    j->flight = &j->batches[1];
    j->dirfd = j->cur_fd = -1;
    j->seg_lsns = o->seg_lsns;
    j->seg_msgs = o->seg_msgs;
    j->nseg_known = o->seg_lsns && o->seg_msgs ? o->nseg : 0;
    int rc = j->dir ? open_files(j) : STP_ENOMEM;
    j->seg_lsns = j->seg_msgs = NULL; /* the caller's arrays: not kept */
    j->nseg_known = 0;
    if (rc == 0)
        rc = start(j);
    if (rc != 0) {
        stp_error("journal %s: cannot open: %s", o->dir, stp_strerror(rc));
        close_files(j);
        free_memory(j);
        return rc;
    }
    *out = j;
    return 0;
}

/* Hand over and wait for every batch until nothing is left to write (or
 * the journal failed). */
static void drain(struct stp_journal *j)
{
    for (;;) {
        if (j->busy) {
            (void)take_done(j, true);
            complete(j);
            continue;
        }
        if (j->failed)
            return;
        stp_jseg_reap(j);
        if (j->open->first == 0 && j->ndead == 0)
            return;
        attach_dead(j, j->open);
        handover(j);
    }
}

void stp_journal_stop(struct stp_journal *j)
{
    if (j->stopped)
        return;
    drain(j);
    j->stopped = true;
    uv_timer_stop(&j->retry);
    stop_thread(j);
    close_files(j);
    uv_close((uv_handle_t *)&j->async, NULL);
    uv_close((uv_handle_t *)&j->retry, NULL);
}

void stp_journal_free(struct stp_journal *j)
{
    if (!j)
        return;
    if (j->thread_started)
        destroy_sync(j);
    free_memory(j);
}

uint64_t stp_journal_appended(const struct stp_journal *j)
{
    return j->appended;
}

size_t stp_journal_pending_bytes(const struct stp_journal *j)
{
    return j->open->buf.len + (j->busy ? j->flight->buf.len : 0);
}

uint64_t stp_journal_synced(const struct stp_journal *j)
{
    return j->synced;
}

bool stp_journal_failed(const struct stp_journal *j)
{
    return j->failed;
}

const struct stp_journal_stats *stp_journal_stats(const struct stp_journal *j)
{
    return &j->stats;
}
