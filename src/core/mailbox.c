/*
 * mailbox.c - workers' mailboxes over SPSC rings (see mailbox.h).
 *
 * Owns the n*n rings (ring[from][to]; the diagonal is unused because a worker
 * posting to itself calls its handler directly), each worker's receive
 * handles (uv_async_t wake-up, uv_idle_t for drains that ran out of budget)
 * and send-side overflow (per receiver an in-order list of fixed-size chunks;
 * a uv_prepare_t, a 1 ms uv_timer_t and a "room" uv_async_t move it into the
 * ring as the receiver drains).
 *
 * Thread contract: everything in struct mb_worker after the two signal words
 * is touched only by that worker's thread (or by the main thread before
 * attach / after the loops ended). Other threads write only the signal words
 * (`wake`: "your rings have commands", `room`: "a ring you wait on drained")
 * and the per-ring `want_room` flags. A signal word holds:
 *
 *   SIG_PENDING   the owner owes itself a look: an async was sent (or, for
 *                 `wake`, the idle handle runs).
 *   SIG_OFF       the owner is not attached: nobody may touch its handles.
 *   count << 2    threads currently inside uv_async_send (detach waits for 0).
 *
 * The signaller makes its change (a ring push, a ring pop), then sets
 * PENDING; only the one that flips it from clear (and sees OFF clear) calls
 * uv_async_send. The owner clears PENDING before it looks, so a change that
 * races with the look is either seen by it or sets PENDING again and causes
 * another look. Every write of a signal word is a read-modify-write, so they
 * form one release sequence: a look whose clear reads a signaller's PENDING
 * also sees that signaller's change.
 *
 * Back-pressure: a sender whose overflow toward `to` cannot move (ring full)
 * sets want_room[from][to]; the receiver checks it after each round of pops
 * from that ring and, if set, signals the sender's `room`, so the overflow
 * moves as soon as there is space rather than on the next timer tick.
 *
 * Commands are opaque fixed-size bytes: nothing here looks inside them, so
 * commands still queued (in rings or overflow) at stp_mailboxes_free are
 * simply discarded. The broker must drain (or release the references its
 * commands carry) before freeing.
 */
#include "stampede/mailbox.h"

#include "stampede/error.h"

#include <assert.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SIG_PENDING 1u
#define SIG_OFF 2u
#define SIG_SENDER 4u /* one unit of the "threads inside uv_async_send" count */

/* Commands popped per stp_ring_pop call (size of the receive scratch buffer). */
#define DRAIN_BATCH 64
/* Commands handled per sender per drain round before yielding to the loop. */
#define DRAIN_BUDGET 1024
/* Overflow chunks hold about this many bytes (and at least 8 commands). */
#define OVF_CHUNK_BYTES 4096
#define OVF_RETRY_MS 1

struct ovf_chunk {
    struct ovf_chunk *next;
    size_t rd, wr; /* next command to move out / next free slot */
    unsigned char data[];
};

/* A sender's private, in-order overflow toward one receiver. */
struct mb_ovf {
    struct ovf_chunk *head, *tail;
    struct ovf_chunk *spare; /* one emptied chunk kept to avoid malloc churn */
    size_t count;
};

struct mb_worker {
    /* written by other workers' threads (see the top of this file) */
    alignas(STP_CACHELINE) atomic_uint wake; /* senders -> this receiver */
    alignas(STP_CACHELINE) atomic_uint room; /* receivers -> this sender */
    /* owned by this worker's thread */
    alignas(STP_CACHELINE) struct stp_mailboxes *mb;
    unsigned self;
    bool attached;
    uv_loop_t *loop;
    stp_mailbox_handler handler;
    stp_mailbox_unblocked on_unblocked;
    void *ctx;
    unsigned char *scratch; /* DRAIN_BATCH commands */
    struct mb_ovf *ovf;     /* [n], indexed by receiver */
    size_t ovf_total;       /* commands in all of this worker's overflow lists */
    uv_async_t async;       /* wake: drain the inbound rings */
    uv_idle_t idle;         /* drain again next iteration (budget ran out) */
    uv_async_t room_async;  /* room: retry the overflow now */
    uv_prepare_t prepare;   /* retry the overflow every iteration ... */
    uv_timer_t timer;       /* ... and every OVF_RETRY_MS while asleep */
};

/* Set by the sender, cleared by the receiver; one cache line per ring. */
struct mb_want {
    alignas(STP_CACHELINE) atomic_bool room;
};

struct stp_mailboxes {
    unsigned n;
    size_t elem_size;
    size_t chunk_elems;
    struct stp_ring *rings;   /* [from * n + to] */
    struct mb_want *want;     /* [from * n + to] */
    struct mb_worker *worker; /* [n] */
};

static struct stp_ring *ring_at(struct stp_mailboxes *mb, unsigned from, unsigned to)
{
    assert(from < mb->n && to < mb->n && from != to);
    return &mb->rings[(size_t)from * mb->n + to];
}

static atomic_bool *want_at(struct stp_mailboxes *mb, unsigned from, unsigned to)
{
    return &mb->want[(size_t)from * mb->n + to].room;
}

/* ---- overflow lists (sender's thread only) ---- */

static int ovf_append(struct stp_mailboxes *mb, struct mb_ovf *o, const void *cmd)
{
    struct ovf_chunk *c = o->tail;
    if (!c || c->wr == mb->chunk_elems) {
        c = o->spare;
        o->spare = NULL;
        if (!c)
            c = malloc(sizeof(*c) + mb->chunk_elems * mb->elem_size);
        if (!c)
            return STP_ENOMEM;
        c->next = NULL;
        c->rd = c->wr = 0;
        if (o->tail)
            o->tail->next = c;
        else
            o->head = c;
        o->tail = c;
    }
    memcpy(c->data + c->wr * mb->elem_size, cmd, mb->elem_size);
    c->wr++;
    o->count++;
    return 0;
}

static void ovf_release_head(struct mb_ovf *o)
{
    struct ovf_chunk *c = o->head;
    o->head = c->next;
    if (!o->head)
        o->tail = NULL;
    if (o->spare) {
        free(c);
    } else {
        o->spare = c;
    }
}

/* Moves commands from the front of o into r until r is full; returns how many. */
static size_t ovf_move(struct stp_mailboxes *mb, struct mb_ovf *o, struct stp_ring *r)
{
    size_t moved = 0;
    while (o->head) {
        struct ovf_chunk *c = o->head;
        while (c->rd < c->wr) {
            if (!stp_ring_push(r, c->data + c->rd * mb->elem_size))
                goto out;
            c->rd++;
            moved++;
        }
        ovf_release_head(o);
    }
out:
    o->count -= moved;
    return moved;
}

static void ovf_free(struct mb_ovf *o)
{
    while (o->head)
        ovf_release_head(o);
    free(o->spare);
    o->spare = NULL;
    o->count = 0;
}

/* ---- signals (see the top of this file) ---- */

/* Any thread, after its change: make sure the owner of `word` looks again. */
static void signal_send(atomic_uint *word, uv_async_t *async)
{
    /* Acq_rel RMW: the release half heads a release sequence that carries our
     * preceding change to the owner's clearing RMW; the acquire half makes the
     * owner's attach (handle init) visible when we see OFF clear. */
    unsigned old = atomic_fetch_or_explicit(word, SIG_PENDING, memory_order_acq_rel);
    if (old & (SIG_PENDING | SIG_OFF))
        return; /* a look is already owed, or nobody is listening yet */
    /* Relaxed: the count only has to be in the RMW order of `word` before
     * detach's OFF (same location), and detach acquires our decrement below. */
    old = atomic_fetch_add_explicit(word, SIG_SENDER, memory_order_relaxed);
    if (!(old & SIG_OFF))
        uv_async_send(async);
    /* Release: our use of the async handle happens-before detach, which
     * acquires this decrement while waiting for the count to reach 0. */
    atomic_fetch_sub_explicit(word, SIG_SENDER, memory_order_release);
}

/* Owner's thread, before it looks at what the signallers changed. */
static void signal_clear(atomic_uint *word)
{
    /* Seq_cst RMW (acq_rel would do, as every write is an RMW): reads the
     * latest PENDING and acquires every change released into it; a change
     * after this clear sets PENDING again and causes another look. */
    atomic_fetch_and_explicit(word, ~SIG_PENDING, memory_order_seq_cst);
}

/* Owner's thread, at attach, handles initialized; the caller then sends its
 * own async once, so changes made while OFF are looked at. */
static void signal_open(atomic_uint *word)
{
    /* Relaxed: PENDING is set before OFF is cleared (same location, RMW
     * order), so no signaller can decide to send before our own send. */
    atomic_fetch_or_explicit(word, SIG_PENDING, memory_order_relaxed);
    /* Release: the handle initialization is visible to any signaller that
     * later reads OFF clear (after our first look clears PENDING). */
    atomic_fetch_and_explicit(word, ~SIG_OFF, memory_order_release);
}

/* Owner's thread, at detach: afterwards nobody touches the async handle. */
static void signal_shut(atomic_uint *word)
{
    /* Relaxed: the waiting loop below does the acquiring. */
    atomic_fetch_or_explicit(word, SIG_OFF, memory_order_relaxed);
    /* Acquire: pairs with each signaller's release decrement, so every
     * uv_async_send on our handle has returned before we close it. */
    while (atomic_load_explicit(word, memory_order_acquire) >= SIG_SENDER)
        sched_yield();
}

static void wake(struct mb_worker *w)
{
    signal_send(&w->wake, &w->async);
}

/* ---- receive side (receiver's thread) ---- */

/* After popping from ring[from][self]: tell `from` if it waits for room. */
static void notify_room(struct mb_worker *w, unsigned from)
{
    atomic_bool *want = want_at(w->mb, from, w->self);
    /* Seq_cst fence: orders our pop's release of head before the load of
     * want_room; pairs with the sender's fence between setting want_room and
     * retrying its push, so either it sees our room or we see its flag. */
    atomic_thread_fence(memory_order_seq_cst);
    /* Relaxed: only decides who signals; signal_send carries the ordering. */
    if (!atomic_load_explicit(want, memory_order_relaxed) ||
        !atomic_exchange_explicit(want, false, memory_order_relaxed))
        return;
    struct mb_worker *s = &w->mb->worker[from];
    signal_send(&s->room, &s->room_async);
}

/* Handles up to DRAIN_BUDGET commands from one sender; true if the budget ran out. */
static bool drain_ring(struct mb_worker *w, unsigned from)
{
    struct stp_mailboxes *mb = w->mb;
    struct stp_ring *r = ring_at(mb, from, w->self);
    size_t left = DRAIN_BUDGET;
    while (left > 0) {
        size_t k = stp_ring_pop(r, w->scratch, left < DRAIN_BATCH ? left : DRAIN_BATCH);
        if (k == 0)
            break;
        notify_room(w, from); /* the sender may refill while we handle these */
        for (size_t i = 0; i < k; i++) {
            w->handler(w->ctx, from, w->scratch + i * mb->elem_size);
            if (!w->attached)
                return false; /* a handler detached us; the rest of the batch is dropped */
        }
        left -= k;
    }
    return left == 0;
}

static void idle_cb(uv_idle_t *h);

static void drain(struct mb_worker *w)
{
    signal_clear(&w->wake); /* before any pop: a racing push signals again */
    bool more = false;
    for (unsigned from = 0; from < w->mb->n && w->attached; from++) {
        if (from != w->self && drain_ring(w, from))
            more = true;
    }
    if (!w->attached)
        return;
    if (more) {
        /* Relaxed: only tells senders a drain is already owed (the idle
         * handle's); the drain's own clear does the synchronizing. */
        atomic_fetch_or_explicit(&w->wake, SIG_PENDING, memory_order_relaxed);
        uv_idle_start(&w->idle, idle_cb);
    } else {
        uv_idle_stop(&w->idle);
    }
}

static void async_cb(uv_async_t *h)
{
    drain(h->data);
}

static void idle_cb(uv_idle_t *h)
{
    drain(h->data);
}

/* ---- send side (sender's thread) ---- */

/* Moves overflow toward `to` into its ring; returns how many moved. */
static size_t flush_to(struct mb_worker *s, unsigned to)
{
    struct stp_mailboxes *mb = s->mb;
    struct mb_ovf *o = &s->ovf[to];
    struct stp_ring *r = ring_at(mb, s->self, to);
    atomic_bool *want = want_at(mb, s->self, to);
    size_t moved = ovf_move(mb, o, r);
    if (o->count > 0) {
        /* Relaxed store, then a seq_cst fence before the retry's load of head:
         * pairs with the receiver's fence after its pop (see notify_room). */
        atomic_store_explicit(want, true, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        moved += ovf_move(mb, o, r);
    }
    if (o->count == 0) /* Relaxed: a stale true only costs one spurious signal. */
        atomic_store_explicit(want, false, memory_order_relaxed);
    if (moved > 0)
        wake(&mb->worker[to]);
    return moved;
}

static void flush(struct mb_worker *s)
{
    if (s->ovf_total == 0)
        return; /* a late or spurious room signal */
    for (unsigned to = 0; to < s->mb->n && s->ovf_total > 0; to++) {
        if (s->ovf[to].count > 0)
            s->ovf_total -= flush_to(s, to);
    }
    if (s->ovf_total > 0)
        return;
    uv_prepare_stop(&s->prepare);
    uv_timer_stop(&s->timer);
    if (s->on_unblocked)
        s->on_unblocked(s->ctx);
}

static void room_cb(uv_async_t *h)
{
    struct mb_worker *s = h->data;
    signal_clear(&s->room); /* before the retry: a racing pop signals again */
    flush(s);
}

static void prepare_cb(uv_prepare_t *h)
{
    flush(h->data);
}

static void timer_cb(uv_timer_t *h)
{
    flush(h->data);
}

static void start_flush(struct mb_worker *s)
{
    uv_prepare_start(&s->prepare, prepare_cb);
    uv_timer_start(&s->timer, timer_cb, OVF_RETRY_MS, OVF_RETRY_MS);
}

int stp_mailbox_post(struct stp_mailboxes *mb, unsigned from, unsigned to, const void *cmd)
{
    assert(from < mb->n && to < mb->n);
    struct mb_worker *s = &mb->worker[from];
    if (from == to) {
        assert(s->attached && s->handler);
        s->handler(s->ctx, from, cmd);
        return 0;
    }
    struct mb_ovf *o = &s->ovf[to];
    if (o->count == 0 && stp_ring_push(ring_at(mb, from, to), cmd)) {
        wake(&mb->worker[to]);
        return 0;
    }
    int rc = ovf_append(mb, o, cmd);
    if (rc)
        return rc;
    if (s->ovf_total++ == 0 && s->attached)
        start_flush(s);
    return 1;
}

int stp_mailbox_try_post(struct stp_mailboxes *mb, unsigned from, unsigned to, const void *cmd)
{
    assert(from < mb->n && to < mb->n && from != to && !mb->worker[from].attached);
    if (!stp_ring_push(ring_at(mb, from, to), cmd))
        return STP_EAGAIN;
    wake(&mb->worker[to]);
    return 0;
}

bool stp_mailbox_backlogged(struct stp_mailboxes *mb, unsigned from)
{
    assert(from < mb->n);
    return mb->worker[from].ovf_total > 0;
}

size_t stp_mailbox_overflowed(struct stp_mailboxes *mb, unsigned from)
{
    assert(from < mb->n);
    return mb->worker[from].ovf_total;
}

size_t stp_mailbox_depth(struct stp_mailboxes *mb, unsigned to)
{
    assert(to < mb->n);
    size_t sum = 0;
    for (unsigned from = 0; from < mb->n; from++) {
        if (from != to)
            sum += stp_ring_count(ring_at(mb, from, to));
    }
    return sum;
}

/* ---- attach / detach (worker's own thread) ---- */

int stp_mailbox_attach(struct stp_mailboxes *mb, unsigned self, uv_loop_t *loop,
                       stp_mailbox_handler handler, stp_mailbox_unblocked on_unblocked, void *ctx)
{
    assert(self < mb->n && handler);
    struct mb_worker *w = &mb->worker[self];
    assert(!w->attached);
    int rc = uv_async_init(loop, &w->async, async_cb);
    if (rc)
        return stp_err_from_uv(rc);
    rc = uv_async_init(loop, &w->room_async, room_cb);
    if (rc) {
        uv_close((uv_handle_t *)&w->async, NULL);
        return stp_err_from_uv(rc);
    }
    uv_idle_init(loop, &w->idle);
    uv_prepare_init(loop, &w->prepare);
    uv_timer_init(loop, &w->timer);
    w->async.data = w->room_async.data = w->idle.data = w;
    w->prepare.data = w->timer.data = w;
    w->loop = loop;
    w->handler = handler;
    w->on_unblocked = on_unblocked;
    w->ctx = ctx;
    w->attached = true;
    signal_open(&w->wake);
    uv_async_send(&w->async); /* drain what was posted before we attached */
    signal_open(&w->room);
    uv_async_send(&w->room_async);
    if (w->ovf_total > 0)
        start_flush(w);
    return 0;
}

void stp_mailbox_detach(struct stp_mailboxes *mb, unsigned self)
{
    assert(self < mb->n);
    struct mb_worker *w = &mb->worker[self];
    if (!w->attached)
        return;
    signal_shut(&w->wake);
    signal_shut(&w->room);
    w->attached = false;
    uv_close((uv_handle_t *)&w->async, NULL);
    uv_close((uv_handle_t *)&w->room_async, NULL);
    uv_close((uv_handle_t *)&w->idle, NULL);
    uv_close((uv_handle_t *)&w->prepare, NULL);
    uv_close((uv_handle_t *)&w->timer, NULL);
}

/* ---- leftovers (main thread, after the loops ended) ---- */

void stp_mailboxes_drain(struct stp_mailboxes *mb, stp_mailbox_handler fn, void *ctx)
{
    unsigned char *tmp = malloc(mb->elem_size);
    if (!tmp)
        return;
    for (unsigned from = 0; from < mb->n; from++) {
        for (unsigned to = 0; to < mb->n; to++) {
            if (from == to)
                continue;
            /* Ring first, then overflow: that is the order they were posted. */
            while (stp_ring_pop(ring_at(mb, from, to), tmp, 1) == 1)
                fn(ctx, from, tmp);
            struct mb_ovf *o = &mb->worker[from].ovf[to];
            while (o->head) {
                struct ovf_chunk *c = o->head;
                for (; c->rd < c->wr; c->rd++)
                    fn(ctx, from, c->data + c->rd * mb->elem_size);
                ovf_release_head(o);
            }
            mb->worker[from].ovf_total -= o->count;
            o->count = 0;
        }
    }
    free(tmp);
}

/* ---- init / free (main thread) ---- */

static void *zalloc_aligned(size_t size)
{
    size = (size + STP_CACHELINE - 1) / STP_CACHELINE * STP_CACHELINE;
    void *p = aligned_alloc(STP_CACHELINE, size);
    if (p)
        memset(p, 0, size);
    return p;
}

static int worker_init(struct stp_mailboxes *mb, unsigned i)
{
    struct mb_worker *w = &mb->worker[i];
    w->mb = mb;
    w->self = i;
    atomic_init(&w->wake, SIG_OFF);
    atomic_init(&w->room, SIG_OFF);
    w->scratch = malloc(DRAIN_BATCH * mb->elem_size);
    w->ovf = calloc(mb->n, sizeof(*w->ovf));
    return w->scratch && w->ovf ? 0 : STP_ENOMEM;
}

int stp_mailboxes_init(struct stp_mailboxes **out, unsigned n, size_t ring_capacity,
                       size_t elem_size)
{
    *out = NULL;
    if (n == 0 || elem_size == 0 || elem_size > SIZE_MAX / DRAIN_BATCH ||
        (size_t)n > SIZE_MAX / n / sizeof(struct stp_ring))
        return STP_EINVAL;
    int rc = STP_ENOMEM;
    struct stp_mailboxes *mb = calloc(1, sizeof(*mb));
    if (!mb)
        return STP_ENOMEM;
    mb->n = n;
    mb->elem_size = elem_size;
    mb->chunk_elems = OVF_CHUNK_BYTES / elem_size > 8 ? OVF_CHUNK_BYTES / elem_size : 8;
    mb->rings = zalloc_aligned((size_t)n * n * sizeof(struct stp_ring));
    mb->want = zalloc_aligned((size_t)n * n * sizeof(struct mb_want));
    mb->worker = zalloc_aligned(n * sizeof(struct mb_worker));
    if (!mb->rings || !mb->want || !mb->worker)
        goto fail;
    for (unsigned i = 0; i < n; i++) {
        if ((rc = worker_init(mb, i)) != 0)
            goto fail;
        for (unsigned j = 0; j < n; j++) {
            if (i != j && (rc = stp_ring_init(ring_at(mb, i, j), ring_capacity, elem_size)))
                goto fail;
        }
    }
    *out = mb;
    return 0;
fail:
    stp_mailboxes_free(mb);
    return rc;
}

void stp_mailboxes_free(struct stp_mailboxes *mb)
{
    if (!mb)
        return;
    for (unsigned i = 0; mb->worker && i < mb->n; i++) {
        struct mb_worker *w = &mb->worker[i];
        assert(!w->attached);
        for (unsigned j = 0; w->ovf && j < mb->n; j++)
            ovf_free(&w->ovf[j]);
        free(w->ovf);
        free(w->scratch);
    }
    /* zeroed rings (the diagonal, or ones init never reached) hold NULL slots */
    for (size_t k = 0; mb->rings && k < (size_t)mb->n * mb->n; k++)
        stp_ring_free(&mb->rings[k]);
    free(mb->rings);
    free(mb->want);
    free(mb->worker);
    free(mb);
}
