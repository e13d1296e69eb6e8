/*
 * consumer.c - a consumer connection: one subscription, MESSAGE frames parsed
 * in place, the stampede-bench header decoded, loss/duplicate/reorder tracked
 * (seqtrack.h), latency measured from the intended send time, and ACKs
 * written per message (client-individual) or once per read (client, whose
 * ACK is cumulative). Runs on the consumer's thread only.
 */
#include "bench.h"

#include "stampede/buf.h"
#include "stampede/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int stp_bench_consumer_init(struct stp_bench_conn *c, struct stp_bench_run *r)
{
    struct stp_bench_consumer *k = &c->u.c;
    k->id = c->index;
    k->dest = c->index % r->cfg.destinations;
    struct stp_bench_dest *d = &r->dests[k->dest];
    int rc = stp_seqorder_init(&k->order, d->nproducers);
    if (rc)
        return rc;
    if (!r->cfg.topic) {
        k->track = &d->shared;
        return 0;
    }
    rc = stp_seqtrack_init(&k->own, d->nproducers);
    k->track = &k->own;
    return rc;
}

void stp_bench_consumer_free(struct stp_bench_conn *c)
{
    struct stp_bench_consumer *k = &c->u.c;
    stp_seqorder_free(&k->order);
    stp_seqtrack_free(&k->own);
}

int stp_bench_consumer_subscribe(struct stp_bench_conn *c)
{
    const struct stp_bench_run *r = c->t->run;
    struct stp_bench_consumer *k = &c->u.c;
    struct stp_buf b = STP_BUF_INIT;
    char rcpt[32];
    snprintf(rcpt, sizeof(rcpt), "sub-%u", k->id);
    int rc = stp_write_command(&b, STP_CMD_SUBSCRIBE);
    rc = rc ? rc : stp_write_header_u64(&b, "id", k->id);
    rc = rc ? rc : stp_write_header_str(&b, "destination", r->dests[k->dest].name, c->version);
    rc = rc ? rc : stp_write_header_str(&b, "ack", stp_bench_ack_name(r->cfg.ack), c->version);
    if (r->cfg.prefetch)
        rc = rc ? rc : stp_write_header_u64(&b, "prefetch-count", r->cfg.prefetch);
    if (r->cfg.selector_split && !r->cfg.topic && r->dests[k->dest].nconsumers > 1) {
        char sel[32]; /* consumer k->id is the (id / destinations)th of its queue */
        snprintf(sel, sizeof(sel), "part = %u", k->id / r->cfg.destinations);
        rc = rc ? rc : stp_write_header_str(&b, "selector", sel, c->version);
    }
    rc = rc ? rc : stp_write_header_str(&b, "receipt", rcpt, c->version);
    rc = rc ? rc : stp_write_body(&b, (struct stp_slice){"", 0});
    rc = rc ? rc : stp_bench_conn_append(c, b.data, b.len);
    stp_buf_free(&b);
    return rc;
}

/* Append "name:value\n" with the value escaped for the session's version. */
static int put_header(struct stp_bench_conn *c, const char *name, struct stp_slice v)
{
    size_t nl = strlen(name);
    if (c->version == STP_V10 || !stp_needs_escape(v)) {
        char *at = stp_bench_conn_out_reserve(c, nl + 1 + v.len + 1);
        if (!at)
            return STP_ENOMEM;
        memcpy(at, name, nl);
        at[nl] = ':';
        memcpy(at + nl + 1, v.p, v.len);
        at[nl + 1 + v.len] = '\n';
        return 0;
    }
    struct stp_buf b = STP_BUF_INIT;
    int rc = stp_write_header(&b, name, v, c->version);
    rc = rc ? rc : stp_bench_conn_append(c, b.data, b.len);
    stp_buf_free(&b);
    return rc;
}

/* ACK for one message: "id" (1.2) or "message-id" (+ "subscription" in 1.1). */
static int write_ack(struct stp_bench_conn *c, struct stp_slice id)
{
    int rc = stp_bench_conn_append(c, "ACK\n", 4);
    if (c->version == STP_V12) {
        rc = rc ? rc : put_header(c, "id", id);
    } else {
        char sub[24];
        int n = snprintf(sub, sizeof(sub), "%u", c->u.c.id);
        if (c->version == STP_V11)
            rc = rc ? rc : put_header(c, "subscription", (struct stp_slice){sub, (size_t)n});
        rc = rc ? rc : put_header(c, "message-id", id);
    }
    return rc ? rc : stp_bench_conn_append(c, "\n", 2); /* blank line + NUL */
}

/* The headers a consumer needs, found in one pass over the frame. */
struct msg_headers {
    const struct stp_slice *bench, *ack, *message_id;
};

static void scan_headers(const struct stp_frame *f, struct msg_headers *h)
{
    static const size_t bench_len = sizeof(STP_BENCH_HDR) - 1;
    h->bench = h->ack = h->message_id = NULL;
    for (size_t i = 0; i < f->nheaders; i++) {
        const struct stp_slice *n = &f->headers[i].name, *v = &f->headers[i].value;
        /* repeated headers: the first one wins */
        if (n->len == bench_len && !h->bench && memcmp(n->p, STP_BENCH_HDR, bench_len) == 0)
            h->bench = v;
        else if (n->len == 3 && !h->ack && memcmp(n->p, "ack", 3) == 0)
            h->ack = v;
        else if (n->len == 10 && !h->message_id && memcmp(n->p, "message-id", 10) == 0)
            h->message_id = v;
    }
}

static void ack_message(struct stp_bench_conn *c, const struct msg_headers *h)
{
    enum stp_bench_ack mode = c->t->run->cfg.ack;
    if (mode == STP_BENCH_ACK_AUTO)
        return;
    const struct stp_slice *id = c->version == STP_V12 ? h->ack : h->message_id;
    if (!id) {
        stp_bench_fail(c->t->run, "consumer %u: MESSAGE without an %s header", c->u.c.id,
                       c->version == STP_V12 ? "ack" : "message-id");
        return;
    }
    struct stp_bench_consumer *k = &c->u.c;
    if (mode == STP_BENCH_ACK_CLIENT && id->len <= sizeof(k->ack_id)) {
        memcpy(k->ack_id, id->p, id->len);
        k->ack_id_len = id->len;
        return;
    }
    if (write_ack(c, *id) != 0)
        stp_bench_fail(c->t->run, "consumer %u: out of memory", k->id);
}

void stp_bench_consumer_read_done(struct stp_bench_conn *c)
{
    struct stp_bench_consumer *k = &c->u.c;
    if (k->ack_id_len == 0)
        return;
    if (write_ack(c, (struct stp_slice){k->ack_id, k->ack_id_len}) != 0)
        stp_bench_fail(c->t->run, "consumer %u: out of memory", k->id);
    k->ack_id_len = 0;
}

struct bench_fields {
    uint64_t run, producer, seq, intended;
};

/* Decode "run:producer:seq:intended" (fixed-width hex); untrusted input. */
static int decode(const struct stp_slice *v, struct bench_fields *out)
{
    if (!v || v->len != STP_BENCH_HDR_VALUE_LEN)
        return STP_EINVAL;
    const char *s = v->p;
    if (s[8] != ':' || s[17] != ':' || s[34] != ':')
        return STP_EINVAL;
    if (stp_bench_unhex(s, 8, &out->run) || stp_bench_unhex(s + 9, 8, &out->producer) ||
        stp_bench_unhex(s + 18, 16, &out->seq) || stp_bench_unhex(s + 35, 16, &out->intended))
        return STP_EINVAL;
    return 0;
}

void stp_bench_consumer_on_message(struct stp_bench_conn *c, const struct stp_frame *f,
                                   uint64_t now)
{
    struct stp_bench_consumer *k = &c->u.c;
    const struct stp_bench_run *r = c->t->run;
    struct bench_fields m;
    struct msg_headers h;
    scan_headers(f, &h);
    ack_message(c, &h);
    if (decode(h.bench, &m) != 0) {
        k->st.invalid++;
        return;
    }
    if (m.run != r->run_id) {
        k->foreign++;
        return;
    }
    unsigned D = r->cfg.destinations;
    if (m.producer >= r->cfg.producers || m.producer % D != k->dest) {
        k->st.invalid++;
        return;
    }
    stp_seq_receive(k->track, &k->order, &k->st, (unsigned)(m.producer / D), m.seq);
    atomic_store_explicit(&k->received, k->st.received, memory_order_relaxed);
    atomic_store_explicit(&k->unique, k->st.unique, memory_order_relaxed);
    if (m.intended >= r->t_warm_end && m.intended < r->t_measure_end && now >= m.intended)
        stp_lathist_record(&c->t->lat, now - m.intended);
    if (now >= r->t_warm_end && now < r->t_measure_end)
        COUNT_ADD(k->delivered_measured, 1);
}
