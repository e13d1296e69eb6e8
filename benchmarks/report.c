/*
 * report.c - human summary and JSON of a finished run (see report.h).
 * Main thread only, after the workers were joined.
 */
#include "report.h"

#include "stampede/error.h"

#include <stdio.h>
#include <string.h>

bool stp_bench_report_sustained(const struct stp_bench_report *rep)
{
    if (rep->failed || rep->sent == 0 || rep->lost || rep->duplicated || rep->reordered ||
        !rep->drained)
        return false;
    if (rep->receipts < rep->receipts_expected)
        return false; /* a receipt never came: the broker did not confirm everything */
    if (rep->drain_ms > 1000.0)
        return false;
    if (rep->offered_rate > 0 && rep->sent_rate < 0.95 * rep->offered_rate)
        return false;
    /* deliveries kept pace with sends during the window: no backlog growth */
    if (rep->delivered_rate < 0.9 * rep->sent_rate * rep->fanout)
        return false;
    return true;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void print_latency(FILE *out, const char *label, const struct stp_lathist *h)
{
    if (!h->total) {
        fprintf(out, "  %-16s none recorded\n", label);
        return;
    }
    fprintf(out, "  %-16s p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f us  (%llu samples)\n",
            label, us(stp_lathist_percentile(h, 50)), us(stp_lathist_percentile(h, 90)),
            us(stp_lathist_percentile(h, 99)), us(stp_lathist_percentile(h, 99.9)), us(h->max),
            (unsigned long long)h->total);
}

void stp_bench_report_print(const struct stp_bench_report *rep, FILE *out)
{
    const struct stp_bench_config *c = rep->cfg;
    fprintf(out,
            "\n== stampede-bench %s%s%s%s%s%s: %u producers -> %u %s%s -> %u consumers, %zu B%s, "
            "ack %s ==\n",
            c->url_text, c->sub_url_text[0] ? " (subscribers " : "", c->sub_url_text,
            c->sub_url_text[0] ? ")" : "", c->preset ? " preset " : "", c->preset ? c->preset : "",
            c->producers, c->destinations, c->topic ? "topic" : "queue",
            c->destinations == 1 ? "" : "s", c->consumers, c->size,
            c->persistent ? " persistent" : "", stp_bench_ack_name(c->ack));
    if (rep->failed)
        fprintf(out, "  FAILED: %s\n", rep->error);
    if (rep->offered_rate > 0)
        fprintf(out, "  offered          %.0f msg/s\n", rep->offered_rate);
    else
        fprintf(out, "  offered          as fast as possible\n");
    fprintf(out, "  sent             %.0f msg/s (%llu in total)\n", rep->sent_rate,
            (unsigned long long)rep->sent);
    if (rep->unwritten)
        fprintf(out, "  unwritten        %llu (the broker stopped reading them)\n",
                (unsigned long long)rep->unwritten);
    fprintf(out, "  delivered        %.0f msg/s (fan-out %.0f, %llu of %llu expected)\n",
            rep->delivered_rate, rep->fanout, (unsigned long long)rep->delivered,
            (unsigned long long)rep->expected);
    print_latency(out, "latency", rep->lat);
    if (rep->rcpt_lat->total || c->receipts) {
        print_latency(out, "receipt latency", rep->rcpt_lat);
        fprintf(out, "  receipts         %llu of %llu asked for%s\n",
                (unsigned long long)rep->receipts, (unsigned long long)rep->receipts_expected,
                rep->receipts < rep->receipts_expected ? " (some never came back)" : "");
    }
    fprintf(out, "  lost %llu  duplicated %llu  reordered %llu  invalid %llu  foreign %llu\n",
            (unsigned long long)rep->lost, (unsigned long long)rep->duplicated,
            (unsigned long long)rep->reordered, (unsigned long long)rep->invalid,
            (unsigned long long)rep->foreign);
    if (rep->lost && !rep->drained && !rep->failed)
        fprintf(out, "  (the lost messages were still undelivered when --drain expired: a "
                     "backlog the broker had not delivered, not necessarily dropped)\n");
    fprintf(out, "  backlog at end %llu, drained %s in %.0f ms%s\n",
            (unsigned long long)rep->backlog_at_end, rep->drained ? "fully" : "NOT", rep->drain_ms,
            rep->producers_flushed ? "" : " (producers could not write everything)");
    if (rep->idle_requested)
        fprintf(out, "  idle connections %u, alive at end %u\n", rep->idle_requested,
                rep->idle_alive);
    if (c->idle_patterns)
        fprintf(out, "  idle pattern subscriptions %u\n", c->idle_patterns);
    fprintf(out, "  sustained: %s\n", stp_bench_report_sustained(rep) ? "yes" : "no");
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void json_latency(FILE *out, const struct stp_lathist *h)
{
    if (!h->total) {
        fprintf(out, "null");
        return;
    }
    fprintf(out,
            "{\"count\": %llu, \"min\": %.1f, \"mean\": %.1f, \"p50\": %.1f, \"p90\": %.1f, "
            "\"p99\": %.1f, \"p99_9\": %.1f, \"max\": %.1f}",
            (unsigned long long)h->total, us(h->min), stp_lathist_mean(h) / 1000.0,
            us(stp_lathist_percentile(h, 50)), us(stp_lathist_percentile(h, 90)),
            us(stp_lathist_percentile(h, 99)), us(stp_lathist_percentile(h, 99.9)), us(h->max));
}

static void json_config(FILE *out, const struct stp_bench_report *rep)
{
    const struct stp_bench_config *c = rep->cfg;
    fprintf(out, "  \"config\": {\"url\": ");
    json_str(out, c->url_text);
    fprintf(out, ", \"sub_url\": ");
    json_str(out, c->sub_url_text[0] ? c->sub_url_text : c->url_text);
    fprintf(out, ", \"preset\": ");
    if (c->preset)
        json_str(out, c->preset);
    else
        fprintf(out, "null");
    fprintf(out,
            ", \"producers\": %u, \"consumers\": %u, \"destinations\": %u, \"kind\": \"%s\", "
            "\"size\": %zu, \"rate_per_producer\": %llu, \"duration_s\": %.3f, "
            "\"warmup_s\": %.3f, \"drain_timeout_s\": %.3f, \"ack\": \"%s\", "
            "\"prefetch\": %u, \"receipts_every\": %u, \"persistent\": %s, \"window\": %u, "
            "\"threads\": %u, \"idle_connections\": %u, \"heartbeat_ms\": %u, "
            "\"idle_patterns\": %u, \"dedup_id_repeat\": %u, \"selector_split\": %s},\n",
            c->producers, c->consumers, c->destinations, c->topic ? "topic" : "queue", c->size,
            (unsigned long long)c->rate, (double)c->duration_ns / 1e9, (double)c->warmup_ns / 1e9,
            (double)c->drain_ns / 1e9, stp_bench_ack_name(c->ack), c->prefetch, c->receipts,
            c->persistent ? "true" : "false", c->window, rep->threads, c->idle_connections,
            c->heartbeat_ms, c->idle_patterns, c->dedup, c->selector_split ? "true" : "false");
}

static void json_first_lost(FILE *out, int64_t producer, int64_t seq)
{
    if (producer < 0)
        fprintf(out, "\"first_lost\": null");
    else
        fprintf(out, "\"first_lost\": {\"producer\": %lld, \"seq\": %lld}", (long long)producer,
                (long long)seq);
}

static void json_lists(FILE *out, const struct stp_bench_report *rep)
{
    fprintf(out, "  \"destinations\": [");
    for (unsigned i = 0; i < rep->ndests; i++) {
        const struct stp_bench_dest_report *d = &rep->dests[i];
        fprintf(out, "%s\n    {\"name\": ", i ? "," : "");
        json_str(out, d->name);
        fprintf(out,
                ", \"producers\": %u, \"consumers\": %u, \"sent\": %llu, "
                "\"delivered\": %llu, \"lost\": %llu, ",
                d->producers, d->consumers, (unsigned long long)d->sent,
                (unsigned long long)d->delivered, (unsigned long long)d->lost);
        json_first_lost(out, d->first_lost_producer, d->first_lost_seq);
        fputc('}', out);
    }
    fprintf(out, "],\n  \"subscriptions\": [");
    for (unsigned i = 0; i < rep->nsubs; i++) {
        const struct stp_bench_sub_report *s = &rep->subs[i];
        fprintf(out,
                "%s\n    {\"consumer\": %u, \"destination\": %u, \"received\": %llu, "
                "\"unique\": %llu, \"duplicated\": %llu, \"reordered\": %llu, "
                "\"invalid\": %llu, \"foreign\": %llu, \"lost\": ",
                i ? "," : "", s->consumer, s->dest, (unsigned long long)s->received,
                (unsigned long long)s->unique, (unsigned long long)s->duplicated,
                (unsigned long long)s->reordered, (unsigned long long)s->invalid,
                (unsigned long long)s->foreign);
        if (s->lost < 0)
            fprintf(out, "null, ");
        else
            fprintf(out, "%lld, ", (long long)s->lost);
        json_first_lost(out, s->first_lost_producer, s->first_lost_seq);
        fputc('}', out);
    }
    fprintf(out, "]\n");
}

int stp_bench_report_write_json(const struct stp_bench_report *rep, FILE *out)
{
    fprintf(out,
            "{\n  \"tool\": \"stampede-bench\", \"version\": \"%s\", \"schema\": 1, "
            "\"timestamp\": \"%s\",\n",
            STP_VERSION, rep->timestamp);
    json_config(out, rep);
    fprintf(out, "  \"result\": \"%s\", \"error\": ",
            rep->failed                                        ? "error"
            : (rep->lost || rep->duplicated || rep->reordered) ? "loss"
                                                               : "ok");
    if (rep->failed)
        json_str(out, rep->error);
    else
        fprintf(out, "null");
    fprintf(out, ", \"sustained\": %s,\n", stp_bench_report_sustained(rep) ? "true" : "false");
    fprintf(out,
            "  \"messages\": {\"sent\": %llu, \"unwritten\": %llu, "
            "\"sent_in_window\": %llu, \"expected\": %llu, "
            "\"delivered\": %llu, \"received\": %llu, \"delivered_in_window\": %llu, "
            "\"lost\": %llu, \"duplicated\": %llu, \"reordered\": %llu, \"invalid\": %llu, "
            "\"foreign\": %llu},\n",
            (unsigned long long)rep->sent, (unsigned long long)rep->unwritten,
            (unsigned long long)rep->sent_measured, (unsigned long long)rep->expected,
            (unsigned long long)rep->delivered, (unsigned long long)rep->received,
            (unsigned long long)rep->delivered_measured, (unsigned long long)rep->lost,
            (unsigned long long)rep->duplicated, (unsigned long long)rep->reordered,
            (unsigned long long)rep->invalid, (unsigned long long)rep->foreign);
    fprintf(out, "  \"rates\": {\"offered_per_s\": ");
    if (rep->offered_rate > 0)
        fprintf(out, "%.0f", rep->offered_rate);
    else
        fprintf(out, "null");
    fprintf(out, ", \"sent_per_s\": %.0f, \"delivered_per_s\": %.0f, \"fanout\": %.2f},\n",
            rep->sent_rate, rep->delivered_rate, rep->fanout);
    fprintf(out, "  \"latency_us\": ");
    json_latency(out, rep->lat);
    fprintf(out, ",\n  \"receipt_latency_us\": ");
    json_latency(out, rep->rcpt_lat);
    fprintf(out, ",\n  \"receipts\": %llu, \"receipts_expected\": %llu,\n",
            (unsigned long long)rep->receipts, (unsigned long long)rep->receipts_expected);
    fprintf(out,
            "  \"drain\": {\"backlog_at_end\": %llu, \"drain_ms\": %.1f, \"drained\": %s, "
            "\"producers_flushed\": %s},\n",
            (unsigned long long)rep->backlog_at_end, rep->drain_ms, rep->drained ? "true" : "false",
            rep->producers_flushed ? "true" : "false");
    fprintf(out, "  \"idle\": {\"requested\": %u, \"alive_at_end\": %u},\n", rep->idle_requested,
            rep->idle_alive);
    fprintf(out, "  \"bytes\": {\"out\": %llu, \"in\": %llu},\n",
            (unsigned long long)rep->bytes_out, (unsigned long long)rep->bytes_in);
    json_lists(out, rep);
    fprintf(out, "}\n");
    return ferror(out) ? STP_EIO : 0;
}
