/*
 * recover.c - replay the data directory's journals at start and hand each
 * worker its queues' persistent messages (see recover.h).
 */
#include "broker/recover.h"

#include "broker/broker.h"
#include "broker/dest.h"
#include "broker/durable.h"
#include "broker/worker.h"
#include "stampede/clock.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/map.h"
#include "stampede/msg.h"
#include "store/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_OLD_WORKERS 1024
#define PATH_MAX_LEN 4096

/* Recovered messages get message-ids of their own (no worker uses 0xffff). */
static atomic_uint_least64_t recovered_ids;

/* --- a key -> index table (open addressing, linear probing) --- */

struct keymap {
    uint64_t *keys; /* 0: empty */
    size_t *idx;
    size_t cap, count;
};

static size_t km_home(const struct keymap *km, uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (km->cap - 1);
}

static int km_grow(struct keymap *km)
{
    struct keymap n = {.cap = km->cap ? km->cap * 2 : 1024};
    n.keys = calloc(n.cap, sizeof(*n.keys));
    n.idx = malloc(n.cap * sizeof(*n.idx));
    if (!n.keys || !n.idx) {
        free(n.keys);
        free(n.idx);
        return STP_ENOMEM;
    }
    for (size_t i = 0; i < km->cap; i++) {
        if (!km->keys[i])
            continue;
        size_t s = km_home(&n, km->keys[i]);
        while (n.keys[s])
            s = (s + 1) & (n.cap - 1);
        n.keys[s] = km->keys[i];
        n.idx[s] = km->idx[i];
    }
    n.count = km->count;
    free(km->keys);
    free(km->idx);
    *km = n;
    return 0;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t km_slot(const struct keymap *km, uint64_t key)
{
    size_t s = km_home(km, key);
    while (km->keys[s] && km->keys[s] != key)
        s = (s + 1) & (km->cap - 1);
    return s;
}

static bool km_get(const struct keymap *km, uint64_t key, size_t *idx)
{
    if (!km->cap)
        return false;
    size_t s = km_slot(km, key);
    if (!km->keys[s])
        return false;
    *idx = km->idx[s];
    return true;
}

static int km_put(struct keymap *km, uint64_t key, size_t idx)
{
    if ((km->count + 1) * 2 > km->cap && km_grow(km) < 0)
        return STP_ENOMEM;
    size_t s = km_slot(km, key);
    km->keys[s] = key;
    km->idx[s] = idx;
    km->count++;
    return 0;
}

/* Remove key (backward-shift deletion keeps probe chains whole). */
static bool km_del(struct keymap *km, uint64_t key, size_t *idx)
{
    if (!km->cap)
        return false;
    size_t mask = km->cap - 1, s = km_slot(km, key);
    if (!km->keys[s])
        return false;
    *idx = km->idx[s];
    for (size_t j = (s + 1) & mask; km->keys[j]; j = (j + 1) & mask) {
        size_t home = km_home(km, km->keys[j]);
        /* Move j back into the hole at s unless its home lies in (s, j]. */
        bool stays = s <= j ? (home > s && home <= j) : (home > s || home <= j);
        if (stays)
            continue;
        km->keys[s] = km->keys[j];
        km->idx[s] = km->idx[j];
        s = j;
    }
    km->keys[s] = 0;
    km->count--;
    return true;
}

static void km_free(struct keymap *km)
{
    free(km->keys);
    free(km->idx);
    *km = (struct keymap){0};
}

/* Where each live message's key is in order[]. Keys of new messages are
 * their record's lsn, which only grows: a dense array indexed by key - base
 * (4 bytes per lsn of the journal, touched almost in order) beats a hash
 * table by a cache miss per record. Keys outside it (a copy forward of a
 * message whose first segment is gone) go to the hash table. */
struct keyindex {
    uint32_t *slot; /* order index + 1; 0: none */
    uint64_t base;  /* key of slot[0] */
    size_t cap;
    struct keymap far;
};

static bool ki_dense(const struct keyindex *ki, uint64_t key)
{
    return ki->base && key >= ki->base && key - ki->base < ki->cap;
}

/* A key in the dense part, or else (a copy forward below the base, or a
 * key far past the others) in the hash table. */
static bool ki_get(const struct keyindex *ki, uint64_t key, size_t *idx)
{
    if (ki_dense(ki, key) && ki->slot[key - ki->base]) {
        *idx = (size_t)ki->slot[key - ki->base] - 1;
        return true;
    }
    return km_get(&ki->far, key, idx);
}

/* Room for key in the dense part, when it lies at or after the base and
 * not absurdly far past the keys so far (a record whose lsn jumps, from a
 * crafted file, must not make recovery allocate gigabytes: it goes to the
 * hash table). */
static int ki_reserve(struct keyindex *ki, uint64_t key, size_t entries)
{
    if (!ki->base)
        ki->base = key;
    if (key < ki->base || key - ki->base < ki->cap)
        return 0;
    if (key - ki->base > 4 * ((uint64_t)entries + (1u << 20)))
        return 0;
    size_t need = (size_t)(key - ki->base) + 1, cap = ki->cap ? ki->cap : 1u << 20;
    while (cap < need)
        cap *= 2;
    uint32_t *n = realloc(ki->slot, cap * sizeof(*n));
    if (!n)
        return STP_ENOMEM;
    memset(n + ki->cap, 0, (cap - ki->cap) * sizeof(*n));
    ki->slot = n;
    ki->cap = cap;
    return 0;
}

static int ki_put(struct keyindex *ki, uint64_t key, size_t idx)
{
    if (idx >= UINT32_MAX || ki_reserve(ki, key, idx) < 0)
        return STP_ENOMEM;
    if (ki_dense(ki, key)) {
        ki->slot[key - ki->base] = (uint32_t)idx + 1;
        return 0;
    }
    return km_put(&ki->far, key, idx);
}

static bool ki_del(struct keyindex *ki, uint64_t key, size_t *idx)
{
    if (ki_dense(ki, key) && ki->slot[key - ki->base]) {
        *idx = (size_t)ki->slot[key - ki->base] - 1;
        ki->slot[key - ki->base] = 0;
        return true;
    }
    return km_del(&ki->far, key, idx);
}

static void ki_free(struct keyindex *ki)
{
    free(ki->slot);
    km_free(&ki->far);
    *ki = (struct keyindex){0};
}

/* --- replaying one journal --- */

struct replay {
    char dir[PATH_MAX_LEN];
    unsigned index;
    uv_thread_t thread;
    struct keyindex map;
    struct stp_msg **order; /* by first appearance; NULL once settled */
    size_t n, cap;
    struct stp_recovery_segs segs;      /* MSG records per segment (for the journal's open) */
    struct stp_recovered_dedups dedups; /* DEDUP records newer than dedup_from */
    uint64_t dedup_from;                /* epoch ms; 0: de-duplication is off */
    struct stp_journal_replay_stats st;
    uint64_t bad; /* records that check but make no sense (skipped) */
    int rc;
};

/* A MSG record the broker can use: a queue destination and a tail that
 * ends with the frame's NUL after the body. */
static bool msg_record_ok(const struct stp_jrec *r)
{
    /* Temp queues are never journaled: one in a journal is not restored
     * (nobody could consume it). */
    return stp_dest_is_queue(r->queue, r->queue_len) &&
           !stp_dest_is_reply(r->queue, r->queue_len) && r->tail_len >= 2 &&
           r->tail[r->tail_len - 1] == '\0' && r->body_len <= r->tail_len - 2;
}

static int segs_push(struct stp_recovery_segs *s, uint64_t lsn, uint64_t msgs)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        uint64_t *l = reallocarray(s->lsns, cap, sizeof(*l));
        if (l)
            s->lsns = l;
        uint64_t *m = l ? reallocarray(s->msgs, cap, sizeof(*m)) : NULL;
        if (!m)
            return STP_ENOMEM;
        s->msgs = m;
        s->cap = cap;
    }
    s->lsns[s->n] = lsn;
    s->msgs[s->n++] = msgs;
    return 0;
}

static void segs_free(struct stp_recovery_segs *s)
{
    free(s->lsns);
    free(s->msgs);
    *s = (struct stp_recovery_segs){0};
}

static struct stp_msg *msg_from_record(const struct stp_jrec *r)
{
    struct stp_msg *m = stp_msg_alloc(r->queue, r->queue_len, r->tail_len);
    if (!m)
        return NULL;
    memcpy((char *)m->tail, r->tail, r->tail_len);
    m->tail_len = r->tail_len;
    m->body_len = r->body_len;
    m->needs_escape = (r->flags & STP_JMSG_NEEDS_ESCAPE) != 0;
    m->binding = (r->flags & STP_JMSG_BINDING) != 0;
    m->persistent = true;
    m->expires_ms = r->expires_ms;
    m->deliveries = r->deliveries;
    m->jkey = r->key;
    m->jlsn = r->lsn;
    uint64_t n = atomic_fetch_add_explicit(&recovered_ids, 1, memory_order_relaxed) + 1;
    stp_msg_set_id(m, (0xffffULL << 48) | n);
    return m;
}

static int on_msg(struct replay *rp, const struct stp_jrec *r)
{
    size_t i;
    if (ki_get(&rp->map, r->key, &i)) {
        /* A copy forward (compaction): the message now lives here. */
        struct stp_msg *m = rp->order[i];
        m->jlsn = r->lsn;
        if (r->deliveries > m->deliveries)
            m->deliveries = r->deliveries;
        return 0;
    }
    if (!msg_record_ok(r)) {
        if (rp->bad++ == 0)
            stp_warn("%s: record %llu is not a queue message; skipped", rp->dir,
                     (unsigned long long)r->lsn);
        return 0;
    }
    struct stp_msg *m = msg_from_record(r);
    if (!m)
        return STP_ENOMEM;
    if ((rp->n == rp->cap &&
         !(rp->order = reallocarray(rp->order, rp->cap = rp->cap ? rp->cap * 2 : 4096,
                                    sizeof(*rp->order)))) ||
        ki_put(&rp->map, r->key, rp->n) < 0) {
        stp_msg_unref(&m);
        return STP_ENOMEM;
    }
    rp->order[rp->n++] = m;
    return 0;
}

static int dedups_push(struct stp_recovered_dedups *l, struct stp_recovered_dedup *d)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct stp_recovered_dedup **v = reallocarray(l->v, cap, sizeof(*v));
        if (!v)
            return STP_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = d;
    return 0;
}

void stp_recovered_dedups_free(struct stp_recovered_dedups *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (struct stp_recovered_dedups){0};
}

/* A DEDUP record: kept while its id is still within the window. */
static int on_dedup(struct replay *rp, const struct stp_jrec *r)
{
    if (!rp->dedup_from || r->seen_ms < rp->dedup_from ||
        stp_dest_kind(r->queue, r->queue_len) != STP_DEST_QUEUE)
        return 0;
    struct stp_recovered_dedup *d = malloc(sizeof(*d) + r->queue_len + r->id_len);
    if (!d)
        return STP_ENOMEM;
    *d = (struct stp_recovered_dedup){r->seen_ms, r->lsn, (uint16_t)r->queue_len,
                                      (uint16_t)r->id_len};
    memcpy(d->data, r->queue, r->queue_len);
    memcpy(d->data + r->queue_len, r->id, r->id_len);
    if (dedups_push(&rp->dedups, d) < 0) {
        free(d);
        return STP_ENOMEM;
    }
    return 0;
}

static int on_record(void *ctx, const struct stp_jrec *r)
{
    struct replay *rp = ctx;
    size_t i;
    switch (r->type) {
    case STP_JREC_MSG:
        return on_msg(rp, r);
    case STP_JREC_SETTLE:
        if (ki_del(&rp->map, r->key, &i))
            stp_msg_unref(&rp->order[i]);
        return 0;
    case STP_JREC_DELIVER:
        if (ki_get(&rp->map, r->key, &i))
            rp->order[i]->deliveries++;
        return 0;
    case STP_JREC_DEDUP:
        return on_dedup(rp, r);
    case STP_JREC_SEGMENT_DONE:
        return segs_push(&rp->segs, r->lsn, r->key);
    default:
        return 0;
    }
}

static int by_key(const void *a, const void *b)
{
    uint64_t x = (*(struct stp_msg *const *)a)->jkey, y = (*(struct stp_msg *const *)b)->jkey;
    return x < y ? -1 : x > y;
}

/* Drop the settled holes and put the live messages in key order (the
 * order they entered their queues; copies forward appear later). */
static void replay_finish(struct replay *rp)
{
    size_t n = 0;
    bool sorted = true;
    for (size_t i = 0; i < rp->n; i++) {
        if (!rp->order[i])
            continue;
        if (n > 0 && rp->order[n - 1]->jkey > rp->order[i]->jkey)
            sorted = false;
        rp->order[n++] = rp->order[i];
    }
    rp->n = n;
    if (!sorted)
        qsort(rp->order, n, sizeof(*rp->order), by_key);
    ki_free(&rp->map);
}

static void replay_main(void *arg)
{
    struct replay *rp = arg;
    rp->rc = stp_journal_replay(rp->dir, on_record, rp, &rp->st);
    if (rp->rc == 0)
        replay_finish(rp);
}

static void replay_free(struct replay *rp)
{
    for (size_t i = 0; i < rp->n; i++)
        stp_msg_unref(&rp->order[i]);
    free(rp->order);
    ki_free(&rp->map);
    segs_free(&rp->segs);
    stp_recovered_dedups_free(&rp->dedups);
}

/* --- files --- */

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static int mkdir_p(const char *path)
{
    char tmp[PATH_MAX_LEN];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

static void rm_rf(const char *path)
{
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
        stp_warn("cannot remove %s: %s", path, strerror(errno));
}

/* CURRENT: 0 and *gen, *workers; 1 when there is none (a new data dir);
 * a negative code after a line on stderr when it is not ours. */
static int read_current(const char *dir, unsigned *gen, unsigned *workers)
{
    char path[PATH_MAX_LEN], text[256];
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 1;
        fprintf(stderr, "stampede: --data-dir: %s: %s\n", path, strerror(errno));
        return STP_EIO;
    }
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    int used = 0;
    if (sscanf(text, "stampede-journal 1\ngeneration %u\nworkers %u\n%n", gen, workers, &used) !=
            2 ||
        (size_t)used != n || *workers == 0 || *workers > MAX_OLD_WORKERS || *gen == 0 ||
        *gen > 1000000000u) {
        fprintf(stderr, "stampede: --data-dir: %s is not a Stampede journal index\n", path);
        return STP_EINVAL;
    }
    return 0;
}

/* Point CURRENT at generation gen, atomically (write, fsync, rename). */
static int write_current(const char *dir, unsigned gen, unsigned workers)
{
    char tmp[PATH_MAX_LEN], path[PATH_MAX_LEN];
    snprintf(tmp, sizeof(tmp), "%s/CURRENT.tmp", dir);
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    char text[128];
    int len = snprintf(text, sizeof(text), "stampede-journal 1\ngeneration %u\nworkers %u\n", gen,
                       workers);
    int rc = write(fd, text, (size_t)len) == len && fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc == 0)
        rc = fsync_path(dir);
    return rc;
}

static void journal_dir(char *out, size_t size, const char *dir, unsigned gen, unsigned w)
{
    snprintf(out, size, "%s/g%u/w%u", dir, gen, w);
}

/* --- re-homing --- */

struct seg_writer {
    int fd;
    uint8_t *buf;
    size_t len, cap;
    uint64_t lsn;
    int rc;
};

static void sw_flush(struct seg_writer *sw)
{
    size_t off = 0;
    while (sw->rc == 0 && off < sw->len) {
        ssize_t n = write(sw->fd, sw->buf + off, sw->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            sw->rc = n < 0 ? -errno : STP_EIO;
        else
            off += (size_t)n;
    }
    sw->len = 0;
}

static void sw_append(struct seg_writer *sw, struct stp_msg *m)
{
    struct stp_jrec r;
    stp_durable_msg_record(&r, m);
    r.lsn = r.key = ++sw->lsn;
    size_t size = stp_jrec_size(&r);
    if (size > sw->cap - sw->len) {
        sw_flush(sw);
        if (size > sw->cap) {
            uint8_t *nb = realloc(sw->buf, size);
            if (!nb) {
                sw->rc = STP_ENOMEM;
                return;
            }
            sw->buf = nb;
            sw->cap = size;
        }
    }
    stp_jrec_encode(&r, sw->buf + sw->len);
    sw->len += size;
    m->jkey = m->jlsn = r.lsn;
}

static void sw_append_dedup(struct seg_writer *sw, struct stp_recovered_dedup *d)
{
    struct stp_jrec r = {.type = STP_JREC_DEDUP,
                         .lsn = ++sw->lsn,
                         .seen_ms = d->seen_ms,
                         .queue = d->data,
                         .queue_len = d->queue_len,
                         .id = d->data + d->queue_len,
                         .id_len = d->id_len};
    size_t size = stp_jrec_size(&r);
    if (size > sw->cap - sw->len)
        sw_flush(sw); /* a DEDUP record is small: it fits an empty buffer */
    stp_jrec_encode(&r, sw->buf + sw->len);
    sw->len += size;
    d->lsn = r.lsn;
}

/* Write worker w's messages (in order), then its DEDUP records, as the
 * first segment of its new journal. */
static int write_rehomed(const char *jdir, struct stp_msg **msgs, size_t n,
                         struct stp_recovered_dedups *dd, uint64_t *last)
{
    char path[PATH_MAX_LEN + 32];
    int rc = mkdir_p(jdir);
    *last = 0;
    if (rc < 0 || n + dd->n == 0)
        return rc; /* no segment: the journal opens its first one */
    snprintf(path, sizeof(path), "%s/%016llx.seg", jdir, 1ULL);
    struct seg_writer sw = {.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600),
                            .cap = 1 << 20};
    if (sw.fd < 0)
        return -errno;
    sw.buf = malloc(sw.cap);
    if (!sw.buf)
        sw.rc = STP_ENOMEM;
    for (size_t i = 0; i < n && sw.rc == 0; i++)
        sw_append(&sw, msgs[i]);
    for (size_t i = 0; i < dd->n && sw.rc == 0; i++)
        sw_append_dedup(&sw, dd->v[i]);
    sw_flush(&sw);
    if (sw.rc == 0 && fdatasync(sw.fd) < 0)
        sw.rc = -errno;
    close(sw.fd);
    free(sw.buf);
    if (sw.rc == 0)
        sw.rc = fsync_path(jdir);
    *last = sw.lsn;
    return sw.rc;
}

/* --- the whole recovery --- */

static int lock_dir(struct stp_broker *b, const char *dir)
{
    char path[PATH_MAX_LEN];
    int rc = mkdir_p(dir);
    if (rc < 0) {
        fprintf(stderr, "stampede: --data-dir %s: %s\n", dir, strerror(-rc));
        return STP_EIO;
    }
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "stampede: --data-dir %s: %s\n", dir, strerror(errno));
        return STP_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "stampede: --data-dir %s is in use by another broker\n", dir);
        close(fd);
        return STP_EINVAL;
    }
    b->recovery.lock_fd = fd;
    return 0;
}

static int alloc_hand_over(struct stp_recovery *r, unsigned n)
{
    r->nworkers = n;
    r->dirs = calloc(n, sizeof(*r->dirs));
    r->next_lsn = calloc(n, sizeof(*r->next_lsn));
    r->msgs = calloc(n, sizeof(*r->msgs));
    r->nmsgs = calloc(n, sizeof(*r->nmsgs));
    r->segs = calloc(n, sizeof(*r->segs));
    r->dedups = calloc(n, sizeof(*r->dedups));
    return r->dirs && r->next_lsn && r->msgs && r->nmsgs && r->segs && r->dedups ? 0 : STP_ENOMEM;
}

/* Replay the old generation's journals, one thread each; DEDUP records
 * first seen from dedup_from on are kept (0: none). */
static int replay_all(const char *dir, unsigned gen, struct replay *rps, unsigned n,
                      uint64_t dedup_from)
{
    for (unsigned i = 0; i < n; i++) {
        journal_dir(rps[i].dir, sizeof(rps[i].dir), dir, gen, i);
        rps[i].index = i;
        rps[i].dedup_from = dedup_from;
        if (uv_thread_create(&rps[i].thread, replay_main, &rps[i]) < 0)
            replay_main(&rps[i]); /* no thread: in this one */
        else
            rps[i].index |= 0x80000000u; /* joined below */
    }
    int rc = 0;
    for (unsigned i = 0; i < n; i++) {
        if (rps[i].index & 0x80000000u)
            uv_thread_join(&rps[i].thread);
        if (rps[i].rc != 0 && rc == 0) {
            fprintf(stderr, "stampede: --data-dir: cannot read the journal %s: %s\n", rps[i].dir,
                    stp_strerror(rps[i].rc));
            rc = STP_EIO;
        }
    }
    return rc;
}

/* Would every live message stay with the worker whose journal holds it? */
static bool in_place(struct stp_broker *b, struct replay *rps, unsigned nold)
{
    if (nold != b->nworkers)
        return false;
    struct stp_worker probe = {.broker_workers = b->nworkers};
    for (unsigned i = 0; i < nold; i++) {
        for (size_t k = 0; k < rps[i].n; k++)
            if (stp_owner_of(&probe, rps[i].order[k]->dest, rps[i].order[k]->dest_len) != i)
                return false;
        for (size_t k = 0; k < rps[i].dedups.n; k++)
            if (stp_owner_of(&probe, rps[i].dedups.v[k]->data, rps[i].dedups.v[k]->queue_len) != i)
                return false;
    }
    return true;
}

/* Move every old journal's DEDUP records to their queue's owner (a queue's
 * records come from one journal, in order). */
static int distribute_dedups(struct stp_broker *b, struct replay *rps, unsigned nold)
{
    struct stp_recovery *r = &b->recovery;
    struct stp_worker probe = {.broker_workers = b->nworkers};
    for (unsigned i = 0; i < nold; i++) {
        struct stp_recovered_dedups *l = &rps[i].dedups;
        for (size_t k = 0; k < l->n; k++) {
            unsigned o = stp_owner_of(&probe, l->v[k]->data, l->v[k]->queue_len);
            if (dedups_push(&r->dedups[o], l->v[k]) < 0)
                return STP_ENOMEM; /* the rest are freed with the replay */
            l->v[k] = NULL;
        }
        stp_recovered_dedups_free(l);
    }
    return 0;
}

/* Move every old journal's messages to their owner under this run's count
 * (keeping each queue's order: a queue came from one journal). */
static int distribute(struct stp_broker *b, struct replay *rps, unsigned nold)
{
    struct stp_recovery *r = &b->recovery;
    struct stp_worker probe = {.broker_workers = b->nworkers};
    size_t *cap = calloc(b->nworkers, sizeof(*cap));
    if (!cap)
        return STP_ENOMEM;
    for (unsigned i = 0; i < nold; i++) {
        for (size_t k = 0; k < rps[i].n; k++) {
            struct stp_msg *m = rps[i].order[k];
            unsigned o = stp_owner_of(&probe, m->dest, m->dest_len);
            if (r->nmsgs[o] == cap[o]) {
                cap[o] = cap[o] ? cap[o] * 2 : 1024;
                struct stp_msg **nm = reallocarray(r->msgs[o], cap[o], sizeof(*nm));
                if (!nm) {
                    free(cap);
                    return STP_ENOMEM;
                }
                r->msgs[o] = nm;
            }
            r->msgs[o][r->nmsgs[o]++] = m;
            rps[i].order[k] = NULL;
        }
        rps[i].n = 0;
    }
    free(cap);
    return distribute_dedups(b, rps, nold);
}

static int rehome(struct stp_broker *b, const char *dir, unsigned oldgen)
{
    struct stp_recovery *r = &b->recovery;
    unsigned gen = oldgen + 1;
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof(path), "%s/g%u", dir, gen);
    rm_rf(path); /* a rewrite a crash interrupted */
    for (unsigned w = 0; w < b->nworkers; w++) {
        uint64_t last = 0;
        journal_dir(path, sizeof(path), dir, gen, w);
        int rc = write_rehomed(path, r->msgs[w], r->nmsgs[w], &r->dedups[w], &last);
        if (rc < 0) {
            fprintf(stderr, "stampede: --data-dir: cannot write %s: %s\n", path, strerror(-rc));
            return STP_EIO;
        }
        r->next_lsn[w] = last + 1;
        segs_free(&r->segs[w]);
        if (last && segs_push(&r->segs[w], 1, r->nmsgs[w] + r->dedups[w].n) < 0)
            return STP_ENOMEM;
    }
    snprintf(path, sizeof(path), "%s/g%u", dir, gen);
    int rc = fsync_path(path);
    if (rc == 0)
        rc = fsync_path(dir);
    if (rc == 0)
        rc = write_current(dir, gen, b->nworkers);
    if (rc < 0) {
        fprintf(stderr, "stampede: --data-dir %s: %s\n", dir, strerror(-rc));
        return STP_EIO;
    }
    if (oldgen) {
        snprintf(path, sizeof(path), "%s/g%u", dir, oldgen);
        rm_rf(path);
    }
    r->generation = gen;
    return 0;
}

static void sum_stats(struct stp_recovery *r, const struct replay *rps, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        r->damaged_records += rps[i].st.damaged_records;
        r->damaged_bytes += rps[i].st.damaged_bytes;
        r->truncated_bytes += rps[i].st.truncated_bytes;
        r->bytes_read += rps[i].st.bytes;
        r->bad_records += rps[i].bad;
    }
}

static int recover_from(struct stp_broker *b, const char *dir, unsigned gen, unsigned nold)
{
    struct stp_recovery *r = &b->recovery;
    struct replay *rps = calloc(nold, sizeof(*rps));
    if (!rps)
        return STP_ENOMEM;
    uint64_t t0 = uv_hrtime();
    uint64_t window = b->cfg->dedup_window_ms, now = stp_epoch_ms();
    int rc = replay_all(dir, gen, rps, nold, window ? (now > window ? now - window : 1) : 0);
    stp_debug("recovery: replay of %u journals took %llu ms", nold,
              (unsigned long long)((uv_hrtime() - t0) / 1000000));
    if (rc == 0) {
        sum_stats(r, rps, nold);
        bool keep = in_place(b, rps, nold);
        if (keep) {
            for (unsigned w = 0; w < nold; w++) {
                r->next_lsn[w] = rps[w].st.last_lsn + 1;
                r->segs[w] = rps[w].segs;
                rps[w].segs = (struct stp_recovery_segs){0};
            }
        }
        rc = distribute(b, rps, nold);
        if (rc == 0 && !keep)
            rc = rehome(b, dir, gen);
        else if (rc == 0)
            r->generation = gen;
    }
    for (unsigned i = 0; i < nold; i++)
        replay_free(&rps[i]);
    free(rps);
    return rc;
}

int stp_recover(struct stp_broker *b)
{
    struct stp_recovery *r = &b->recovery;
    const char *dir = b->cfg->data_dir;
    r->lock_fd = -1;
    if (!dir)
        return 0;
    if (strlen(dir) > PATH_MAX_LEN - 64) {
        fprintf(stderr, "stampede: --data-dir: the path is too long\n");
        return STP_EINVAL;
    }
    uint64_t t0 = uv_hrtime();
    int rc = lock_dir(b, dir);
    if (rc < 0)
        return rc;
    if ((rc = alloc_hand_over(r, b->nworkers)) < 0)
        return rc;
    unsigned gen = 0, nold = 0;
    rc = read_current(dir, &gen, &nold);
    if (rc < 0)
        return rc;
    if (rc == 1)
        rc = rehome(b, dir, 0); /* a new data dir: generation 1, empty journals */
    else
        rc = recover_from(b, dir, gen, nold);
    if (rc < 0)
        return rc;
    for (unsigned w = 0; w < b->nworkers; w++) {
        char path[PATH_MAX_LEN];
        journal_dir(path, sizeof(path), dir, r->generation, w);
        if (!(r->dirs[w] = strdup(path)))
            return STP_ENOMEM;
        if (!r->next_lsn[w])
            r->next_lsn[w] = 1;
        r->messages += r->nmsgs[w];
    }
    r->elapsed_ms = (uv_hrtime() - t0) / 1000000;
    stp_info("data dir %s: recovered %llu persistent messages (%llu bytes of journal) in "
             "%llu ms",
             dir, (unsigned long long)r->messages, (unsigned long long)r->bytes_read,
             (unsigned long long)r->elapsed_ms);
    if (r->damaged_records || r->truncated_bytes || r->bad_records)
        stp_warn("data dir %s: skipped %llu damaged stretches (%llu bytes) and %llu bad "
                 "records; cut a torn tail of %llu bytes",
                 dir, (unsigned long long)r->damaged_records, (unsigned long long)r->damaged_bytes,
                 (unsigned long long)r->bad_records, (unsigned long long)r->truncated_bytes);
    return 0;
}

void stp_recover_hand_over(struct stp_broker *b, struct stp_worker *w)
{
    struct stp_recovery *r = &b->recovery;
    if (!r->dirs || w->id >= r->nworkers)
        return;
    w->journal_dir = r->dirs[w->id];
    w->journal_next_lsn = r->next_lsn[w->id];
    w->restore = r->msgs[w->id];
    w->nrestore = r->nmsgs[w->id];
    w->journal_segs = r->segs[w->id];
    r->segs[w->id] = (struct stp_recovery_segs){0};
    w->restore_dedup = r->dedups[w->id];
    r->dedups[w->id] = (struct stp_recovered_dedups){0};
    r->msgs[w->id] = NULL;
    r->nmsgs[w->id] = 0;
}

void stp_recover_release(struct stp_broker *b)
{
    struct stp_recovery *r = &b->recovery;
    for (unsigned w = 0; r->dirs && w < r->nworkers; w++) {
        free(r->dirs[w]);
        for (size_t k = 0; r->msgs && k < r->nmsgs[w]; k++)
            stp_msg_unref(&r->msgs[w][k]);
        if (r->msgs)
            free(r->msgs[w]);
        if (r->segs)
            segs_free(&r->segs[w]);
        if (r->dedups)
            stp_recovered_dedups_free(&r->dedups[w]);
    }
    free(r->segs);
    free(r->dedups);
    free(r->dirs);
    free(r->next_lsn);
    free(r->msgs);
    free(r->nmsgs);
    if (r->lock_fd >= 0)
        close(r->lock_fd);
    *r = (struct stp_recovery){.lock_fd = -1};
}
