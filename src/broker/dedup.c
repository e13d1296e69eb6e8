/*
 * dedup.c - publish de-duplication windows (contract in dedup.h).
 *
 * A window is a hash set of ids (stp_map, keys inside the entries) and a
 * FIFO of the same entries, oldest first. The owner sees a destination's
 * SENDs in order, so the FIFO is in first-seen order and expiry and
 * early eviction both take from its head: no tombstones. Owner thread only,
 * except the broker-wide byte count (a relaxed atomic: it is a bound, not
 * a publication; workers may pass it together by one entry each).
 */
#include "broker/dedup.h"
#include "broker/broker.h"
#include "broker/durable.h"
#include "broker/worker.h"
#include "stampede/clock.h"
#include "stampede/log.h"
#include "stampede/map.h"
#include "stampede/msg.h"
#include "store/journal.h"

#include <stdlib.h>
#include <string.h>

/* What a window costs, counted toward --dedup-max-memory as it really is:
 * the window and its name, each id's allocation (malloc's header and
 * rounding included), and the hash table's and the FIFO's capacity (they
 * grow by doubling and shrink only when the window is freed). */
#define WIN_OVERHEAD (sizeof(struct win) + 64)

struct win {
    char *name; /* the worker's map key */
    size_t name_len;
    struct stp_map ids;         /* id -> struct stp_dedup_id */
    struct stp_dedup_fifo fifo; /* oldest first */
    size_t id_bytes;            /* the ids' allocations */
    size_t bytes;               /* counted in the broker's dedup_bytes */
};

static atomic_size_t *total(struct stp_worker *w)
{
    return &w->broker->dedup_bytes;
}

/* One id's allocation: glibc rounds to 16 bytes after an 8-byte header. */
static size_t id_cost(size_t len)
{
    size_t n = (sizeof(struct stp_dedup_id) + len + 8 + 15) & ~(size_t)15;
    return n < 32 ? 32 : n;
}

static size_t tables(const struct win *v)
{
    return v->ids.cap * sizeof(struct stp_map_slot) + v->fifo.cap * sizeof(struct stp_dedup_slot);
}

/* Count v's bytes again (after ids came or went) in the broker's total. */
static void recount(struct stp_worker *w, struct win *v)
{
    size_t now = WIN_OVERHEAD + v->name_len + v->id_bytes + tables(v);
    if (now >= v->bytes)
        atomic_fetch_add_explicit(total(w), now - v->bytes, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(total(w), v->bytes - now, memory_order_relaxed);
    v->bytes = now;
}

/* What one more id of len bytes adds to v: its allocation, and the tables
 * when that id makes them double. */
static size_t growth(const struct win *v, size_t len)
{
    size_t n = id_cost(len);
    if ((v->ids.count + 1) * 10 > v->ids.cap * 7)
        n += (v->ids.cap ? v->ids.cap : 16) * sizeof(struct stp_map_slot);
    if (v->fifo.count == v->fifo.cap)
        n += (v->fifo.cap ? v->fifo.cap : STP_DEQUE_MIN_CAP) * sizeof(struct stp_dedup_slot);
    return n;
}

/* The oldest id of v leaves (expired or evicted early): its journal record
 * goes too. */
static void pop_oldest(struct stp_worker *w, struct win *v)
{
    struct stp_dedup_id *d = stp_dedup_fifo_pop_front(&v->fifo).d;
    stp_map_del(&v->ids, d->id, d->len);
    if (d->jlsn && w->dur.j)
        stp_journal_release(w->dur.j, d->jlsn);
    v->id_bytes -= id_cost(d->len);
    free(d);
}

static void win_free(struct stp_worker *w, struct win *v)
{
    while (v->fifo.count)
        pop_oldest(w, v);
    stp_dedup_fifo_free(&v->fifo);
    stp_map_free(&v->ids);
    atomic_fetch_sub_explicit(total(w), v->bytes, memory_order_relaxed);
    free(v->name);
    free(v);
}

static bool expired(const struct stp_worker *w, const struct stp_dedup_id *d, uint64_t now)
{
    return d->seen_ms + w->cfg->dedup_window_ms <= now;
}

static void expire_win(struct stp_worker *w, struct win *v, uint64_t now)
{
    size_t before = v->fifo.count;
    while (v->fifo.count && expired(w, stp_dedup_fifo_at(&v->fifo, 0)->d, now))
        pop_oldest(w, v);
    if (v->fifo.count != before)
        recount(w, v);
}

/* v is empty: forget it. */
static void drop_win(struct stp_worker *w, struct win *v)
{
    stp_map_del(&w->dedup, v->name, v->name_len);
    win_free(w, v);
}

static struct win *win_make(struct stp_worker *w, const char *name, size_t len)
{
    struct win *v = calloc(1, sizeof(*v));
    if (!v || !(v->name = malloc(len + 1))) {
        free(v);
        return NULL;
    }
    memcpy(v->name, name, len);
    v->name[len] = '\0';
    v->name_len = len;
    if (stp_map_put(&w->dedup, v->name, len, v) < 0) {
        free(v->name);
        free(v);
        return NULL;
    }
    recount(w, v);
    return v;
}

static void evicted(struct stp_worker *w)
{
    static _Thread_local uint64_t last_log_ms;
    STP_STAT_INC(w->stats.dedup_evicted);
    uint64_t now = uv_now(&w->loop);
    if (last_log_ms == 0 || now - last_log_ms >= 60000) {
        last_log_ms = now;
        stp_warn("de-duplication: ids forgotten before --dedup-window ended (over "
                 "--dedup-max-ids or --dedup-max-memory)");
    }
}

/* Room for one more id of len bytes in v: the oldest go early while v is
 * at --dedup-max-ids or the broker over --dedup-max-memory. False when
 * there is still no room (v holds nothing more to give). */
static bool make_room(struct stp_worker *w, struct win *v, size_t len)
{
    const struct stp_config *cfg = w->cfg;
    while (v->fifo.count && v->fifo.count >= cfg->dedup_max_ids) {
        pop_oldest(w, v);
        evicted(w);
        recount(w, v);
    }
    bool room = true;
    while (atomic_load_explicit(total(w), memory_order_relaxed) + growth(v, len) >
           cfg->dedup_max_memory) {
        if (!v->fifo.count) {
            room = false;
            break;
        }
        pop_oldest(w, v);
        evicted(w);
        recount(w, v);
    }
    return room;
}

/* Remember id in dest's window (made when missing); false when it could
 * not be (no room, out of memory: counted as forgotten early). */
static struct stp_dedup_id *insert(struct stp_worker *w, const char *dest, size_t dest_len,
                                   const char *id, size_t len, uint64_t seen_ms)
{
    struct win *v = stp_map_get(&w->dedup, dest, dest_len);
    if (!v && !(v = win_make(w, dest, dest_len)))
        return NULL;
    struct stp_dedup_id *d = NULL;
    if (make_room(w, v, len) && (d = malloc(sizeof(*d) + len)) != NULL) {
        *d = (struct stp_dedup_id){.seen_ms = seen_ms, .len = (uint16_t)len};
        memcpy(d->id, id, len);
        if (stp_map_put(&v->ids, d->id, len, d) < 0) {
            free(d);
            d = NULL;
        } else if (stp_dedup_fifo_push_back(&v->fifo, (struct stp_dedup_slot){d}) < 0) {
            stp_map_del(&v->ids, d->id, len);
            free(d);
            d = NULL;
        }
    }
    if (!d) {
        evicted(w);
        if (!v->fifo.count)
            drop_win(w, v);
        return NULL;
    }
    v->id_bytes += id_cost(len);
    recount(w, v);
    return d;
}

bool stp_dedup_seen(struct stp_worker *w, const struct stp_msg *m)
{
    struct win *v = stp_map_get(&w->dedup, m->dest, m->dest_len);
    if (!v)
        return false;
    expire_win(w, v, stp_epoch_ms());
    if (!stp_map_get(&v->ids, m->tail + m->dedup_off, m->dedup_len))
        return false; /* an emptied window goes at the next stp_dedup_expire */
    STP_STAT_INC(w->stats.msgs_deduplicated);
    return true;
}

void stp_dedup_remember(struct stp_worker *w, const struct stp_msg *m)
{
    const char *id = m->tail + m->dedup_off;
    uint64_t now = stp_epoch_ms();
    struct stp_dedup_id *d = insert(w, m->dest, m->dest_len, id, m->dedup_len, now);
    if (d && m->jkey)
        d->jlsn = stp_durable_dedup(w, m->dest, m->dest_len, id, m->dedup_len, now);
}

void stp_dedup_restore(struct stp_worker *w, const char *dest, size_t dest_len, const char *id,
                       size_t id_len, uint64_t seen_ms, uint64_t lsn)
{
    uint64_t now = stp_epoch_ms();
    if (!w->cfg->dedup_window_ms || seen_ms + w->cfg->dedup_window_ms <= now)
        return;
    struct win *v = stp_map_get(&w->dedup, dest, dest_len);
    if (v && stp_map_get(&v->ids, id, id_len))
        return; /* the same id twice: the first one counts */
    struct stp_dedup_id *d = insert(w, dest, dest_len, id, id_len, seen_ms);
    if (d && lsn && w->dur.j) {
        stp_journal_adopt(w->dur.j, lsn);
        d->jlsn = lsn;
    }
}

void stp_dedup_expire(struct stp_worker *w)
{
    uint64_t now = stp_epoch_ms();
    for (size_t i = 0; i < w->dedup.cap;) {
        struct win *v = w->dedup.slots[i].hash ? w->dedup.slots[i].value : NULL;
        if (v)
            expire_win(w, v, now);
        if (v && !v->fifo.count) {
            /* Backward-shift deletion may move a later entry into slot i:
             * look at slot i again. */
            drop_win(w, v);
            continue;
        }
        i++;
    }
}

void stp_dedup_free(struct stp_worker *w)
{
    /* After stp_durable_free (w->dur.j is NULL): the journal keeps the
     * records for the next start. */
    for (size_t i = 0; i < w->dedup.cap; i++) {
        struct win *v = w->dedup.slots[i].hash ? w->dedup.slots[i].value : NULL;
        if (v)
            win_free(w, v);
    }
    stp_map_free(&w->dedup);
}

size_t stp_dedup_count(const struct stp_worker *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->dedup.cap; i++) {
        const struct win *v = w->dedup.slots[i].hash ? w->dedup.slots[i].value : NULL;
        n += v ? v->fifo.count : 0;
    }
    return n;
}
