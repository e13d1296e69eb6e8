/* Unit tests of stampede-bench's open-loop rate pacing. */
#include "lathist.h"
#include "pacer.h"

#include <criterion/criterion.h>
#include <stdlib.h>

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

Test(bench_pacer, intended_times_follow_the_schedule)
{
    struct stp_pacer p;
    uint64_t start = 5 * SEC;
    stp_pacer_init(&p, start, start + 10 * SEC, 1000);
    cr_assert_eq(stp_pacer_interval(&p), 1 * MS);
    cr_assert_eq(stp_pacer_due(&p, start - 1), 0, "nothing before the start");
    cr_assert_eq(stp_pacer_due(&p, start), 1, "message 0 is due at the start");
    cr_assert_eq(stp_pacer_due(&p, start + MS - 1), 1);
    cr_assert_eq(stp_pacer_due(&p, start + MS), 2);
    for (uint64_t i = 0; i < 5000; i++) {
        uint64_t now = start + i * MS;
        cr_assert_eq(stp_pacer_due(&p, now), 1, "message %llu", (unsigned long long)i);
        cr_assert_eq(stp_pacer_take(&p, now + 7), start + i * MS, "intended, not actual");
        cr_assert_eq(stp_pacer_due(&p, now), 0);
    }
}

Test(bench_pacer, no_drift_with_fractional_intervals)
{
    struct stp_pacer p;
    stp_pacer_init(&p, 0, UINT64_MAX, 3);
    cr_assert_eq(stp_pacer_intended(&p, 1), 333333333);
    cr_assert_eq(stp_pacer_intended(&p, 3), 1 * SEC);
    cr_assert_eq(stp_pacer_intended(&p, 3000000), 1000000 * SEC);
    stp_pacer_init(&p, 0, UINT64_MAX, 7000000);
    cr_assert_eq(stp_pacer_intended(&p, 7000000ULL * 3600), 3600 * SEC, "an hour later, exact");
    /* due counts exactly the messages whose intended time has come */
    for (uint64_t t = 0; t < 10000; t += 37) {
        uint64_t due = stp_pacer_due(&p, t);
        cr_assert(due == 0 || stp_pacer_intended(&p, due - 1) <= t);
        cr_assert(stp_pacer_intended(&p, due) > t);
    }
}

Test(bench_pacer, catch_up_keeps_intended_times)
{
    struct stp_pacer p;
    stp_pacer_init(&p, 0, 10 * SEC, 10000); /* every 100 us */
    uint64_t now = 0;
    while (now < 100 * MS) {
        while (stp_pacer_due(&p, now))
            stp_pacer_take(&p, now);
        now += 100000;
    }
    cr_assert_eq(p.next, 1000);
    /* the sender stalls for 50 ms: 500 messages fall due meanwhile */
    now += 50 * MS;
    uint64_t backlog = stp_pacer_due(&p, now);
    cr_assert_eq(backlog, 501);
    for (uint64_t i = 0; i < backlog; i++) {
        uint64_t intended = stp_pacer_take(&p, now);
        cr_assert_eq(intended, (1000 + i) * 100000, "catch-up message %llu keeps its slot",
                     (unsigned long long)i);
        cr_assert(intended <= now);
    }
    cr_assert_eq(stp_pacer_due(&p, now), 0, "caught up");
    cr_assert_eq(stp_pacer_offered(&p, now), p.next);
}

Test(bench_pacer, stops_at_the_end)
{
    struct stp_pacer p;
    stp_pacer_init(&p, 1 * SEC, 2 * SEC, 100);
    cr_assert_eq(stp_pacer_due(&p, 5 * SEC), 100, "only the 100 due before the end");
    cr_assert_eq(stp_pacer_offered(&p, 5 * SEC), 100);
    for (int i = 0; i < 100; i++)
        cr_assert(stp_pacer_take(&p, 5 * SEC) < 2 * SEC);
    cr_assert_eq(stp_pacer_due(&p, 5 * SEC), 0);
}

Test(bench_pacer, unpaced_means_now)
{
    struct stp_pacer p;
    stp_pacer_init(&p, 1 * SEC, 2 * SEC, 0);
    cr_assert_eq(stp_pacer_interval(&p), 0);
    cr_assert_eq(stp_pacer_due(&p, SEC / 2), 0);
    cr_assert_eq(stp_pacer_due(&p, SEC + 5), UINT64_MAX);
    cr_assert_eq(stp_pacer_take(&p, SEC + 5), SEC + 5);
    cr_assert_eq(stp_pacer_take(&p, SEC + 9), SEC + 9);
    cr_assert_eq(stp_pacer_offered(&p, SEC + 9), 2);
    cr_assert_eq(stp_pacer_due(&p, 2 * SEC), 0);
}

/* Latency taken from the intended send time under a stall equals what
 * HdrHistogram's correction reconstructs from the one naive sample. */
Test(bench_pacer, intended_time_latency_corrects_coordinated_omission)
{
    struct stp_lathist *measured = malloc(sizeof(*measured));
    struct stp_lathist *corrected = malloc(sizeof(*corrected));
    cr_assert(measured && corrected);
    stp_lathist_init(measured);
    stp_lathist_init(corrected);
    struct stp_pacer p;
    stp_pacer_init(&p, 0, 1 * SEC, 1000);
    /* a closed-loop sender that sends on time except for a 100 ms stall at 300 ms */
    for (uint64_t now = 0; now < 1 * SEC; now += 1 * MS) {
        if (now > 300 * MS && now < 400 * MS)
            continue;
        while (stp_pacer_due(&p, now)) {
            uint64_t intended = stp_pacer_take(&p, now);
            stp_lathist_record(measured, now - intended);
        }
        /* the closed-loop view: the message tried at 301 ms completes at 400 ms,
         * then the loop goes on; one slow sample instead of 99 late messages */
        if (now == 400 * MS)
            stp_lathist_record_corrected(corrected, 99 * MS, 1 * MS);
        stp_lathist_record_corrected(corrected, 0, 1 * MS);
    }
    cr_assert_eq(measured->total, 1000);
    cr_assert_eq(corrected->total, 1000);
    double pcts[] = {50, 90, 95, 99, 99.9, 100};
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        cr_assert_eq(stp_lathist_percentile(measured, pcts[i]),
                     stp_lathist_percentile(corrected, pcts[i]), "p%g", pcts[i]);
    cr_assert(stp_lathist_percentile(measured, 95) >= 49 * MS, "the stall shows at p95");
    free(measured);
    free(corrected);
}
