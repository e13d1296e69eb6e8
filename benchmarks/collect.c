/*
 * collect.c - turn a finished run into its report: merge the threads'
 * histograms, count loss from the trackers' bitmaps, sum the counters.
 * Main thread only, after every worker was joined (so plain reads of the
 * workers' memory are safe), and the run's teardown.
 */
#include "run.h"

#include "stampede/tls.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void stp_bench_report_fill(struct stp_bench_run *r, struct stp_bench_report *rep);

static void timestamp(char *out, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Loss of one tracker over the streams of destination d: seqs never seen. */
static uint64_t missing(const struct stp_bench_run *r, const struct stp_seqtrack *t, unsigned d)
{
    uint64_t lost = 0;
    for (unsigned p = d; p < r->cfg.producers; p += r->cfg.destinations) {
        uint64_t sent = COUNT_GET(r->producers[p]->u.p.written);
        lost += stp_seqtrack_missing(t, p / r->cfg.destinations, sent);
    }
    return lost;
}

/* First (producer, seq) of destination d that tracker t never saw. */
static void first_lost(const struct stp_bench_run *r, const struct stp_seqtrack *t, unsigned d,
                       int64_t *producer, int64_t *seq)
{
    *producer = *seq = -1;
    for (unsigned p = d; p < r->cfg.producers; p += r->cfg.destinations) {
        uint64_t sent = COUNT_GET(r->producers[p]->u.p.written);
        uint64_t s = stp_seqtrack_first_missing(t, p / r->cfg.destinations, sent);
        if (s != UINT64_MAX) {
            *producer = p;
            *seq = (int64_t)s;
            return;
        }
    }
}

static void fill_dests(struct stp_bench_run *r, struct stp_bench_report *rep)
{
    const struct stp_bench_config *cfg = &r->cfg;
    for (unsigned d = 0; d < cfg->destinations; d++) {
        struct stp_bench_dest_report *dr = &rep->dests[d];
        dr->name = r->dests[d].name;
        dr->producers = r->dests[d].nproducers;
        dr->consumers = r->dests[d].nconsumers;
        for (unsigned p = d; p < cfg->producers; p += cfg->destinations)
            dr->sent += COUNT_GET(r->producers[p]->u.p.written);
        dr->first_lost_producer = dr->first_lost_seq = -1;
        if (!cfg->topic && dr->consumers) {
            dr->lost = missing(r, &r->dests[d].shared, d);
            first_lost(r, &r->dests[d].shared, d, &dr->first_lost_producer, &dr->first_lost_seq);
        }
    }
}

static void fill_subs(struct stp_bench_run *r, struct stp_bench_report *rep)
{
    const struct stp_bench_config *cfg = &r->cfg;
    for (unsigned i = 0; i < cfg->consumers; i++) {
        const struct stp_bench_consumer *k = &r->consumers[i]->u.c;
        struct stp_bench_sub_report *s = &rep->subs[i];
        s->consumer = k->id;
        s->dest = k->dest;
        s->received = k->st.received;
        s->unique = k->st.unique;
        s->duplicated = k->st.duplicated;
        s->reordered = k->st.reordered;
        s->invalid = k->st.invalid;
        s->foreign = k->foreign;
        s->lost = cfg->topic ? (int64_t)missing(r, k->track, k->dest) : -1;
        s->first_lost_producer = s->first_lost_seq = -1;
        if (cfg->topic)
            first_lost(r, k->track, k->dest, &s->first_lost_producer, &s->first_lost_seq);
        rep->dests[k->dest].delivered += s->unique;
        rep->received += s->received;
        rep->delivered += s->unique;
        rep->delivered_measured += COUNT_GET(k->delivered_measured);
        rep->duplicated += s->duplicated;
        rep->reordered += s->reordered;
        rep->invalid += s->invalid;
        rep->foreign += s->foreign;
        if (s->lost > 0)
            rep->lost += (uint64_t)s->lost;
    }
}

static void fill_totals(struct stp_bench_run *r, struct stp_bench_report *rep)
{
    const struct stp_bench_config *cfg = &r->cfg;
    double secs = (double)cfg->duration_ns / 1e9;
    uint64_t fan_sent = 0;
    rep->producers_flushed = true;
    for (unsigned p = 0; p < cfg->producers; p++) {
        const struct stp_bench_producer *pp = &r->producers[p]->u.p;
        rep->producers_flushed &= atomic_load(&pp->done) != 0;
        unsigned nc = r->dests[pp->dest].nconsumers;
        uint64_t s = COUNT_GET(pp->written);
        rep->sent += s;
        rep->unwritten += COUNT_GET(pp->sent) - s;
        rep->sent_measured += COUNT_GET(pp->sent_measured);
        rep->receipts += COUNT_GET(pp->receipts);
        rep->receipts_expected += COUNT_GET(pp->receipts_asked);
        rep->expected += nc ? (cfg->topic ? s * nc : s) : 0;
        fan_sent += nc ? s : 0;
    }
    for (unsigned d = 0; d < cfg->destinations; d++)
        if (!cfg->topic)
            rep->lost += rep->dests[d].lost;
    rep->fanout = fan_sent ? (double)rep->expected / (double)fan_sent : 0;
    rep->offered_rate = (double)cfg->rate * cfg->producers;
    rep->sent_rate = (double)rep->sent_measured / secs;
    rep->delivered_rate = (double)rep->delivered_measured / secs;
    for (unsigned i = 0; i < r->nthreads; i++) {
        rep->bytes_out += COUNT_GET(r->threads[i].bytes_out);
        rep->bytes_in += COUNT_GET(r->threads[i].bytes_in);
    }
    rep->idle_requested = cfg->idle_connections;
    unsigned closed = atomic_load(&r->closed_idle);
    rep->idle_alive = closed < cfg->idle_connections ? cfg->idle_connections - closed : 0;
}

void stp_bench_report_fill(struct stp_bench_run *r, struct stp_bench_report *rep)
{
    timestamp(rep->timestamp, sizeof(rep->timestamp));
    rep->threads = r->nthreads;
    rep->started = atomic_load(&r->started) != 0;
    if (atomic_load(&r->failed) == 1) {
        rep->failed = true;
        snprintf(rep->error, sizeof(rep->error), "%s", r->fail_msg);
    }
    rep->lat = calloc(1, sizeof(*rep->lat));
    rep->rcpt_lat = calloc(1, sizeof(*rep->rcpt_lat));
    rep->subs = calloc(r->cfg.consumers + 1, sizeof(*rep->subs));
    rep->dests = calloc(r->cfg.destinations + 1, sizeof(*rep->dests));
    if (!rep->lat || !rep->rcpt_lat || !rep->subs || !rep->dests || !r->consumers ||
        !r->producers || !r->dests || (r->cfg.consumers && !r->consumers[r->cfg.consumers - 1]) ||
        (r->cfg.producers && !r->producers[r->cfg.producers - 1])) {
        rep->failed = true;
        if (!rep->error[0])
            snprintf(rep->error, sizeof(rep->error), "out of memory");
        return;
    }
    stp_lathist_init(rep->lat);
    stp_lathist_init(rep->rcpt_lat);
    for (unsigned i = 0; i < r->nthreads; i++) {
        stp_lathist_add(rep->lat, &r->threads[i].lat);
        stp_lathist_add(rep->rcpt_lat, &r->threads[i].rcpt_lat);
    }
    rep->nsubs = r->cfg.consumers;
    rep->ndests = r->cfg.destinations;
    fill_dests(r, rep);
    fill_subs(r, rep);
    fill_totals(r, rep);
}

void stp_bench_run_free(struct stp_bench_run *r, struct stp_bench_report *rep)
{
    for (unsigned i = 0; r->threads && i < r->nthreads; i++) {
        struct stp_bench_thread *t = &r->threads[i];
        if (t->run)
            stp_bench_thread_fini(t);
        for (unsigned k = 0; k < t->nconns; k++)
            stp_bench_conn_free(t->conns[k]);
        free(t->conns);
    }
    for (unsigned d = 0; r->dests && d < r->cfg.destinations; d++) {
        stp_seqtrack_free(&r->dests[d].shared);
        free(r->dests[d].pconns);
        free(r->dests[d].cconns);
    }
    free(r->threads);
    for (unsigned i = 0; i < 2; i++)
        if (r->ep[i].tls_config)
            stp_tls_config_unref(&r->ep[i].tls_config);
    free(r->dests);
    free(r->producers);
    free(r->consumers);
    free(r->idles);
    free(rep->lat);
    free(rep->rcpt_lat);
    free(rep->subs);
    free(rep->dests);
    memset(rep, 0, sizeof(*rep));
}
