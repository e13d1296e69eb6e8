/* Unit tests of stampede-bench's report: the "sustained" rule the comparison's
 * rate sweep relies on, and the JSON document. */
#include "report.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct stp_bench_config cfg;
static struct stp_lathist lat, rcpt;

/* A run that kept up: 10,000 msg/s offered and sent, fan-out 10, delivered. */
static struct stp_bench_report good(void)
{
    stp_bench_config_defaults(&cfg);
    cfg.rate = 10000;
    stp_lathist_init(&lat);
    stp_lathist_init(&rcpt);
    for (int i = 1; i <= 1000; i++)
        stp_lathist_record(&lat, (uint64_t)i * 1000);
    struct stp_bench_report r = {
        .cfg = &cfg,
        .threads = 2,
        .started = true,
        .sent = 60000,
        .sent_measured = 50000,
        .expected = 600000,
        .delivered = 600000,
        .received = 600000,
        .delivered_measured = 500000,
        .offered_rate = 10000,
        .sent_rate = 10000,
        .delivered_rate = 100000,
        .fanout = 10,
        .drained = true,
        .drain_ms = 12,
        .producers_flushed = true,
        .lat = &lat,
        .rcpt_lat = &rcpt,
    };
    snprintf(r.timestamp, sizeof(r.timestamp), "2026-11-26T00:00:00Z");
    return r;
}

Test(bench_report, sustained_rule)
{
    struct stp_bench_report r = good();
    cr_assert(stp_bench_report_sustained(&r));
    r = good(), r.failed = true;
    cr_assert(!stp_bench_report_sustained(&r), "a failed run");
    r = good(), r.sent = 0;
    cr_assert(!stp_bench_report_sustained(&r), "nothing sent");
    r = good(), r.lost = 1;
    cr_assert(!stp_bench_report_sustained(&r), "one message lost");
    r = good(), r.duplicated = 1;
    cr_assert(!stp_bench_report_sustained(&r), "one duplicate");
    r = good(), r.reordered = 1;
    cr_assert(!stp_bench_report_sustained(&r), "one reordered");
    r = good(), r.drained = false;
    cr_assert(!stp_bench_report_sustained(&r), "not drained");
    r = good(), r.drain_ms = 1500;
    cr_assert(!stp_bench_report_sustained(&r), "drain took more than 1 s");
    r = good(), r.sent_rate = 9400;
    cr_assert(!stp_bench_report_sustained(&r), "under 95%% of the offered rate sent");
    r = good(), r.sent_rate = 9600, r.delivered_rate = 96000;
    cr_assert(stp_bench_report_sustained(&r), "96%% is enough");
    r = good(), r.delivered_rate = 85000;
    cr_assert(!stp_bench_report_sustained(&r), "deliveries fell behind sends x fan-out");
    r = good(), r.offered_rate = 0;
    cr_assert(stp_bench_report_sustained(&r), "unpaced: no offered rate to meet");
}

static char *json_of(const struct stp_bench_report *r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    cr_assert_eq(stp_bench_report_write_json(r, f), 0);
    fclose(f);
    return text;
}

/* Brackets balance outside strings, and strings end. */
static void assert_well_formed(const char *s)
{
    int depth = 0;
    bool in_str = false;
    for (const char *p = s; *p; p++) {
        if (in_str) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                in_str = false;
            else
                cr_assert((unsigned char)*p >= 0x20, "raw control byte in a string");
            continue;
        }
        if (*p == '"')
            in_str = true;
        else if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']')
            cr_assert(--depth >= 0);
    }
    cr_assert(!in_str);
    cr_assert_eq(depth, 0);
}

Test(bench_report, json_of_a_good_run)
{
    struct stp_bench_report r = good();
    char *j = json_of(&r);
    assert_well_formed(j);
    cr_assert(strstr(j, "\"schema\": 1"));
    cr_assert(strstr(j, "\"result\": \"ok\", \"error\": null, \"sustained\": true"));
    cr_assert(strstr(j, "\"offered_per_s\": 10000"));
    cr_assert(strstr(j, "\"lost\": 0"));
    cr_assert(strstr(j, "\"p50\": 500."), "%s", j); /* within the bucket precision */
    cr_assert(strstr(j, "\"max\": 1000.0"));
    cr_assert(strstr(j, "\"receipt_latency_us\": null"));
    cr_assert(strstr(j, "\"subscriptions\": []"));
    free(j);
}

Test(bench_report, receipts_must_all_come_back)
{
    struct stp_bench_report r = good();
    cfg.receipts = 1;
    r.receipts = r.receipts_expected = 60000;
    cr_assert(stp_bench_report_sustained(&r));
    r.receipts = 59999;
    cr_assert(!stp_bench_report_sustained(&r), "one receipt never came back");
}

Test(bench_report, json_of_a_durable_run_has_receipt_latency)
{
    struct stp_bench_report r = good();
    cfg.persistent = true, cfg.receipts = 1, cfg.window = 200;
    for (int i = 1; i <= 100; i++)
        stp_lathist_record(&rcpt, (uint64_t)i * 10000); /* 10 us .. 1 ms */
    r.receipts = r.receipts_expected = 60000;
    char *j = json_of(&r);
    assert_well_formed(j);
    cr_assert(strstr(j, "\"persistent\": true, \"window\": 200"), "%s", j);
    cr_assert(strstr(j, "\"dedup_id_repeat\": 0, \"selector_split\": false}"), "%s", j);
    cr_assert(strstr(j, "\"receipts_every\": 1"));
    const char *rl = strstr(j, "\"receipt_latency_us\": {");
    cr_assert_not_null(rl, "%s", j);
    cr_assert(strstr(rl, "\"count\": 100,"), "%s", rl);
    cr_assert(strstr(rl, "\"p99\": 99"), "p99 of 10..1000 us is 990 us: %s", rl);
    cr_assert(strstr(j, "\"receipts\": 60000, \"receipts_expected\": 60000"), "%s", j);
    free(j);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    stp_bench_report_print(&r, f);
    fclose(f);
    const char *line = strstr(text, "receipt latency");
    cr_assert_not_null(line, "%s", text);
    cr_assert(strstr(line, "p99 99"), "the text report has the receipt p99: %s", text);
    cr_assert(strstr(text, "receipts         60000 of 60000"), "%s", text);
    cr_assert(strstr(text, "100 B persistent"), "%s", text);
    free(text);
}

Test(bench_report, json_of_a_failed_run_escapes_the_error)
{
    struct stp_bench_report r = good();
    r.failed = true;
    snprintf(r.error, sizeof(r.error), "broker sent ERROR: \"bad\\thing\"\nline two");
    struct stp_bench_sub_report sub = {.consumer = 3,
                                       .dest = 0,
                                       .received = 5,
                                       .lost = -1,
                                       .first_lost_producer = -1,
                                       .first_lost_seq = -1};
    r.subs = &sub;
    r.nsubs = 1;
    char *j = json_of(&r);
    assert_well_formed(j);
    cr_assert(strstr(j, "\"result\": \"error\""));
    cr_assert(strstr(j, "\\\"bad\\\\thing\\\"\\u000aline two"), "%s", j);
    cr_assert(strstr(j, "\"sustained\": false"));
    cr_assert(strstr(j, "\"consumer\": 3"));
    cr_assert(strstr(j, "\"lost\": null, \"first_lost\": null"));
    free(j);
}
