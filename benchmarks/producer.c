/*
 * producer.c - a producer connection: SEND frames built once as templates and
 * copied into the output buffer with the sequence number and intended send
 * time patched in (no allocation per message), paced by struct stp_pacer.
 * Runs on the producer's thread only; its counters are single-writer atomics
 * read by the main thread.
 */
#include "bench.h"

#include "stampede/buf.h"
#include "stampede/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stop generating while this much output waits behind the write in flight. */
#define PENDING_LIMIT (256 * 1024)
#define RCPT_RING 65536
#define SEQ_OFF (8 + 1 + 8 + 1)
#define TIME_OFF (SEQ_OFF + 16 + 1)

static int build_template(struct stp_bench_conn *c, struct stp_bench_run *r, int with_receipt)
{
    struct stp_bench_producer *p = &c->u.p;
    struct stp_buf b = STP_BUF_INIT;
    char value[STP_BENCH_HDR_VALUE_LEN + 1];
    snprintf(value, sizeof(value), "%08x:%08x:%016x:%016x", r->run_id, p->id, 0u, 0u);
    int rc = stp_write_command(&b, STP_CMD_SEND);
    rc = rc ? rc : stp_write_header_str(&b, "destination", r->dests[p->dest].name, STP_V10);
    rc = rc ? rc : stp_write_header_u64(&b, "content-length", r->cfg.size);
    rc = rc ? rc : stp_buf_append_str(&b, STP_BENCH_HDR ":");
    size_t hdr_off = b.len;
    rc = rc ? rc : stp_buf_append_str(&b, value);
    rc = rc ? rc : stp_buf_append_str(&b, "\n");
    if (r->cfg.persistent)
        rc = rc ? rc : stp_buf_append_str(&b, "persistent:true\n");
    p->dedup_off[with_receipt] = 0;
    if (r->cfg.dedup) {
        /* dedup-id:RUN-PRODUCER-N, N (16 hex digits) patched in per SEND */
        snprintf(value, sizeof(value), "dedup-id:%08x-%08x-", r->run_id, p->id);
        rc = rc ? rc : stp_buf_append_str(&b, value);
        p->dedup_off[with_receipt] = b.len;
        rc = rc ? rc : stp_buf_append_str(&b, "0000000000000000\n");
    }
    if (p->parts) {
        rc = rc ? rc : stp_buf_append_str(&b, "part:");
        p->part_off[with_receipt] = b.len;
        rc = rc ? rc : stp_buf_append_str(&b, "000000\n");
    }
    if (with_receipt) {
        rc = rc ? rc : stp_buf_append_str(&b, "receipt:");
        p->receipt_off = b.len;
        rc = rc ? rc : stp_buf_append_str(&b, "0000000000000000\n");
    }
    rc = rc ? rc : stp_buf_append_str(&b, "\n");
    rc = rc ? rc : stp_buf_reserve(&b, r->cfg.size + 1);
    if (rc) {
        stp_buf_free(&b);
        return rc;
    }
    memset(b.data + b.len, 'x', r->cfg.size);
    b.len += r->cfg.size;
    b.data[b.len++] = '\0';
    p->tmpl[with_receipt] = b.data;
    p->tmpl_len[with_receipt] = b.len;
    p->hdr_off[with_receipt] = hdr_off;
    return 0;
}

int stp_bench_producer_init(struct stp_bench_conn *c, struct stp_bench_run *r)
{
    struct stp_bench_producer *p = &c->u.p;
    p->id = c->index;
    p->dest = c->index % r->cfg.destinations;
    if (r->cfg.selector_split && !r->cfg.topic && r->dests[p->dest].nconsumers > 1)
        p->parts = r->dests[p->dest].nconsumers;
    int rc = build_template(c, r, 0);
    rc = rc ? rc : build_template(c, r, 1);
    if (rc == 0 && r->cfg.receipts) {
        p->rcpt_ring = calloc(RCPT_RING, sizeof(*p->rcpt_ring));
        if (!p->rcpt_ring)
            rc = STP_ENOMEM;
    }
    return rc;
}

void stp_bench_producer_free(struct stp_bench_conn *c)
{
    struct stp_bench_producer *p = &c->u.p;
    free(p->tmpl[0]);
    free(p->tmpl[1]);
    free(p->rcpt_ring);
}

static bool wants_receipt(const struct stp_bench_producer *p, unsigned every)
{
    return every && p->seq % every == every - 1 && p->rcpt_tail - p->rcpt_head < RCPT_RING;
}

/* Six decimal digits of v (< 10^6) at dst. */
static void put_dec6(char *dst, unsigned v)
{
    for (int i = 5; i >= 0; i--, v /= 10)
        dst[i] = (char)('0' + v % 10);
}

/* Copy one SEND into the output buffer; false when out of memory. */
static bool emit(struct stp_bench_conn *c, uint64_t intended, unsigned every)
{
    struct stp_bench_producer *p = &c->u.p;
    int k = wants_receipt(p, every);
    char *dst = stp_bench_conn_out_reserve(c, p->tmpl_len[k]);
    if (!dst)
        return false;
    memcpy(dst, p->tmpl[k], p->tmpl_len[k]);
    stp_bench_hex(dst + p->hdr_off[k] + SEQ_OFF, p->seq, 16);
    stp_bench_hex(dst + p->hdr_off[k] + TIME_OFF, intended, 16);
    if (p->dedup_off[k])
        stp_bench_hex(dst + p->dedup_off[k], p->seq / c->t->run->cfg.dedup, 16);
    if (p->parts)
        put_dec6(dst + p->part_off[k], (unsigned)(p->seq % p->parts));
    if (k) {
        stp_bench_hex(dst + p->receipt_off, p->seq, 16);
        p->rcpt_ring[p->rcpt_tail++ % RCPT_RING] = intended;
    }
    p->seq++;
    return true;
}

static void check_done(struct stp_bench_conn *c, uint64_t now)
{
    struct stp_bench_producer *p = &c->u.p;
    if (now >= c->t->run->t_measure_end && !c->writing && stp_bench_conn_pending(c) == 0)
        atomic_store_explicit(&p->done, 1, memory_order_relaxed);
}

/* Unpaced producers keep at most cfg.window messages each in flight: sent by
 * the destination's producers but not yet delivered to its slowest subscriber
 * (topic) or to any consumer (queue). Reads other threads' single-writer
 * counters (relaxed: a slightly old value only delays the next batch). */
static uint64_t window_room(const struct stp_bench_conn *c)
{
    const struct stp_bench_run *r = c->t->run;
    const struct stp_bench_dest *d = &r->dests[c->u.p.dest];
    if (r->cfg.rate || !r->cfg.window || d->ncconns == 0)
        return UINT64_MAX;
    uint64_t sent = 0, delivered = r->cfg.topic ? UINT64_MAX : 0;
    for (unsigned i = 0; i < d->npconns; i++)
        sent += COUNT_GET(d->pconns[i]->u.p.sent);
    for (unsigned i = 0; i < d->ncconns; i++) {
        uint64_t u = COUNT_GET(d->cconns[i]->u.c.unique);
        if (r->cfg.topic)
            delivered = u < delivered ? u : delivered;
        else
            delivered += u;
    }
    uint64_t limit = (uint64_t)r->cfg.window * d->npconns;
    if (delivered >= sent)
        return r->cfg.window;
    if (sent - delivered >= limit)
        return 0;
    return (limit - (sent - delivered) + d->npconns - 1) / d->npconns;
}

/* Unpaced producers that ask for receipts also keep at most cfg.window
 * messages each not yet covered by a RECEIPT: a broker that delivers before
 * it confirms (a MESSAGE may leave before the fsync its RECEIPT waits for)
 * would otherwise let receipts, and the generator's bookkeeping of them, fall
 * behind without bound, so a run would measure how fast its buffers fill
 * rather than what the broker sustains. */
uint64_t stp_bench_receipt_room(const struct stp_bench_config *cfg, uint64_t seq,
                                uint64_t receipted)
{
    if (cfg->rate || !cfg->window || !cfg->receipts)
        return UINT64_MAX;
    /* with a receipt every Nth SEND, N must fit or the first never leaves */
    uint64_t limit = cfg->window > cfg->receipts ? cfg->window : cfg->receipts;
    uint64_t unreceipted = seq > receipted ? seq - receipted : 0;
    return unreceipted >= limit ? 0 : limit - unreceipted;
}

void stp_bench_producer_pump(struct stp_bench_conn *c, uint64_t now)
{
    struct stp_bench_producer *p = &c->u.p;
    const struct stp_bench_run *r = c->t->run;
    if (c->state != CONN_READY || atomic_load_explicit(&p->done, memory_order_relaxed))
        return;
    uint64_t due = now < r->t_measure_end ? stp_pacer_due(&p->pacer, now) : 0;
    /* room in the buffer being filled; at most one more buffer is in flight */
    size_t pending = c->out[c->fill].len, frame = p->tmpl_len[1];
    uint64_t room = pending < PENDING_LIMIT ? (PENDING_LIMIT - pending) / frame + 1 : 0;
    uint64_t n = due < room ? due : room, measured = 0, win = window_room(c);
    uint64_t rwin = stp_bench_receipt_room(&r->cfg, p->seq, p->receipted);
    n = n < win ? n : win;
    n = n < rwin ? n : rwin;
    uint64_t asked = p->rcpt_tail;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t intended = stp_pacer_take(&p->pacer, now);
        if (!emit(c, intended, r->cfg.receipts)) {
            stp_bench_fail(c->t->run, "producer %u: out of memory", p->id);
            break;
        }
        measured += intended >= r->t_warm_end;
    }
    if (n) {
        p->fill_msgs += n;
        COUNT_ADD(p->sent, n);
        COUNT_ADD(p->sent_measured, measured);
        if (p->rcpt_tail != asked)
            COUNT_ADD(p->receipts_asked, p->rcpt_tail - asked);
    }
    stp_bench_conn_flush(c);
    check_done(c, now);
}

void stp_bench_producer_on_receipt(struct stp_bench_conn *c, const struct stp_frame *f,
                                   uint64_t now)
{
    struct stp_bench_producer *p = &c->u.p;
    if (p->rcpt_head == p->rcpt_tail)
        return; /* not one of ours */
    uint64_t intended = p->rcpt_ring[p->rcpt_head++ % RCPT_RING];
    COUNT_ADD(p->receipts, 1);
    /* our receipt-ids are the SEND's seq in 16 hex digits; receipts come in
     * the order of their SENDs, so this one covers everything before it */
    const struct stp_slice *id = stp_frame_header(f, "receipt-id");
    uint64_t seq;
    if (id && id->len == 16 && stp_bench_unhex(id->p, 16, &seq) == 0 && seq < p->seq &&
        seq + 1 > p->receipted)
        p->receipted = seq + 1;
    p->rcpt_kick = true;
    const struct stp_bench_run *r = c->t->run;
    if (intended >= r->t_warm_end && intended < r->t_measure_end && now >= intended)
        stp_lathist_record(&c->t->rcpt_lat, now - intended);
}
