/*
 * seqtrack.c - loss, duplicate and reorder detection (see seqtrack.h for the
 * sharing contract). Chunks are installed with a compare-exchange: two
 * consumers racing to create the same chunk both allocate, one wins, the
 * other frees its copy.
 */
#include "seqtrack.h"

#include "stampede/error.h"

#include <stdlib.h>

#define CHUNK_WORDS ((UINT64_C(1) << STP_SEQ_CHUNK_BITS) / 64)
#define DIR_SIZE (UINT64_C(1) << STP_SEQ_DIR_BITS)

int stp_seqtrack_init(struct stp_seqtrack *t, unsigned nstreams)
{
    t->nstreams = nstreams;
    t->dir = calloc((size_t)nstreams * DIR_SIZE + 1, sizeof(*t->dir));
    return t->dir ? 0 : STP_ENOMEM;
}

void stp_seqtrack_free(struct stp_seqtrack *t)
{
    if (!t->dir)
        return;
    for (size_t i = 0; i < (size_t)t->nstreams * DIR_SIZE; i++)
        free(atomic_load_explicit(&t->dir[i], memory_order_relaxed));
    free(t->dir);
    t->dir = NULL;
}

static _Atomic(uint64_t *) *slot(const struct stp_seqtrack *t, unsigned stream, uint64_t seq)
{
    return &t->dir[(size_t)stream * DIR_SIZE + (seq >> STP_SEQ_CHUNK_BITS)];
}

/* The chunk holding seq, created when missing; NULL on allocation failure. */
static uint64_t *chunk_get(struct stp_seqtrack *t, unsigned stream, uint64_t seq)
{
    _Atomic(uint64_t *) *s = slot(t, stream, seq);
    /* acquire: a chunk installed by another thread is seen zeroed, not torn */
    uint64_t *c = atomic_load_explicit(s, memory_order_acquire);
    if (c)
        return c;
    uint64_t *fresh = calloc(CHUNK_WORDS, sizeof(uint64_t));
    if (!fresh)
        return NULL;
    uint64_t *expected = NULL;
    /* release pairs with the acquire above: the zeroed words are published */
    if (atomic_compare_exchange_strong_explicit(s, &expected, fresh, memory_order_acq_rel,
                                                memory_order_acquire))
        return fresh;
    free(fresh);
    return expected;
}

int stp_seqtrack_mark(struct stp_seqtrack *t, unsigned stream, uint64_t seq)
{
    if (stream >= t->nstreams || seq >= STP_SEQ_MAX)
        return STP_EINVAL;
    uint64_t *c = chunk_get(t, stream, seq);
    if (!c)
        return STP_ENOMEM;
    uint64_t off = seq & ((UINT64_C(1) << STP_SEQ_CHUNK_BITS) - 1);
    uint64_t bit = UINT64_C(1) << (off & 63);
    _Atomic uint64_t *w = (_Atomic uint64_t *)&c[off >> 6];
    uint64_t old = atomic_fetch_or_explicit(w, bit, memory_order_relaxed);
    return (old & bit) ? 0 : 1;
}

bool stp_seqtrack_seen(const struct stp_seqtrack *t, unsigned stream, uint64_t seq)
{
    if (stream >= t->nstreams || seq >= STP_SEQ_MAX)
        return false;
    uint64_t *c = atomic_load_explicit(slot(t, stream, seq), memory_order_acquire);
    if (!c)
        return false;
    uint64_t off = seq & ((UINT64_C(1) << STP_SEQ_CHUNK_BITS) - 1);
    _Atomic uint64_t *w = (_Atomic uint64_t *)&c[off >> 6];
    return (atomic_load_explicit(w, memory_order_relaxed) >> (off & 63)) & 1;
}

uint64_t stp_seqtrack_missing(const struct stp_seqtrack *t, unsigned stream, uint64_t upto)
{
    if (upto > STP_SEQ_MAX)
        upto = STP_SEQ_MAX;
    uint64_t present = 0;
    uint64_t chunk_size = UINT64_C(1) << STP_SEQ_CHUNK_BITS;
    for (uint64_t base = 0; base < upto && stream < t->nstreams; base += chunk_size) {
        uint64_t *c = atomic_load_explicit(slot(t, stream, base), memory_order_acquire);
        if (!c)
            continue;
        uint64_t n = upto - base < chunk_size ? upto - base : chunk_size;
        for (uint64_t w = 0; w < n / 64; w++)
            present += (uint64_t)__builtin_popcountll(c[w]);
        if (n % 64)
            present += (uint64_t)__builtin_popcountll(c[n / 64] & ((UINT64_C(1) << (n % 64)) - 1));
    }
    return upto - present;
}

uint64_t stp_seqtrack_first_missing(const struct stp_seqtrack *t, unsigned stream, uint64_t upto)
{
    uint64_t chunk_size = UINT64_C(1) << STP_SEQ_CHUNK_BITS;
    if (upto > STP_SEQ_MAX)
        upto = STP_SEQ_MAX;
    for (uint64_t base = 0; base < upto && stream < t->nstreams; base += chunk_size) {
        uint64_t *c = atomic_load_explicit(slot(t, stream, base), memory_order_acquire);
        if (!c)
            return base;
        for (uint64_t w = 0; w < chunk_size / 64 && base + w * 64 < upto; w++) {
            if (c[w] == UINT64_MAX)
                continue;
            uint64_t seq = base + w * 64 + (uint64_t)__builtin_ctzll(~c[w]);
            return seq < upto ? seq : UINT64_MAX;
        }
    }
    return UINT64_MAX;
}

int stp_seqorder_init(struct stp_seqorder *o, unsigned nstreams)
{
    o->nstreams = nstreams;
    o->next = calloc(nstreams ? nstreams : 1, sizeof(*o->next));
    return o->next ? 0 : STP_ENOMEM;
}

void stp_seqorder_free(struct stp_seqorder *o)
{
    free(o->next);
    o->next = NULL;
}

void stp_seq_receive(struct stp_seqtrack *t, struct stp_seqorder *o, struct stp_seqstats *st,
                     unsigned stream, uint64_t seq)
{
    int rc = stp_seqtrack_mark(t, stream, seq);
    if (rc < 0 || stream >= o->nstreams) {
        st->invalid++;
        return;
    }
    st->received++;
    if (rc == 0) {
        st->duplicated++;
        return;
    }
    st->unique++;
    if (seq + 1 < o->next[stream])
        st->reordered++;
    else
        o->next[stream] = seq + 1;
}
