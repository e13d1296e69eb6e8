/*
 * segs.c - the loop side's account of the segments: which one each record
 * lands in, how many of their MSG records are still live, which ones are
 * dead and may go (oldest first), and which one compaction should empty.
 *
 * The loop decides segment membership itself (journal.c rolls on the byte
 * count it assigned), so this account never waits for the writer. Loop
 * thread only.
 */
#include "journal_int.h"

#include "stampede/array.h"
#include "stampede/error.h"

#include <string.h>

int stp_jseg_push(struct stp_journal *j, uint64_t first_lsn, uint64_t msgs, uint64_t bytes)
{
    if (STP_ARRAY_RESERVE(j->segs, j->segs_cap, j->nsegs + 1) != 0)
        return STP_ENOMEM;
    j->segs[j->nsegs++] = (struct jseg){first_lsn, 0, msgs, bytes};
    return 0;
}

/* The segment holding lsn: the last one named at or before it. */
static struct jseg *find(struct stp_journal *j, uint64_t lsn)
{
    if (lsn == 0 || lsn >= j->next_lsn)
        return NULL;
    size_t lo = 0, hi = j->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (j->segs[mid].first_lsn <= lsn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? NULL : &j->segs[lo - 1];
}

void stp_journal_adopt(struct stp_journal *j, uint64_t lsn)
{
    struct jseg *s = find(j, lsn);
    if (!s)
        return;
    s->live++;
    if (s->msgs < s->live) /* counted short (damage): never below live */
        s->msgs = s->live;
}

void stp_journal_release(struct stp_journal *j, uint64_t lsn)
{
    struct jseg *s = find(j, lsn);
    if (s && s->live > 0)
        s->live--;
}

void stp_jseg_reap(struct stp_journal *j)
{
    size_t k = 0;
    while (k + 1 < j->nsegs && j->segs[k].live == 0)
        k++;
    if (k == 0 || STP_ARRAY_RESERVE(j->dead, j->dead_cap, j->ndead + k) != 0)
        return; /* out of memory: they go at a later flush */
    for (size_t i = 0; i < k; i++)
        j->dead[j->ndead++] = j->segs[i].first_lsn;
    memmove(j->segs, j->segs + k, (j->nsegs - k) * sizeof(*j->segs));
    j->nsegs -= k;
}

uint64_t stp_journal_compact_below(struct stp_journal *j)
{
    if (j->failed || j->nsegs < 2)
        return 0;
    const struct jseg *s = &j->segs[0];
    if (s->live == 0 || s->live * 4 >= s->msgs)
        return 0;
    return j->segs[1].first_lsn;
}
