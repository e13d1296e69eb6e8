/* Unit tests of stampede-bench's receipt window: an unpaced producer that asks
 * for receipts keeps at most --window messages not yet covered by a RECEIPT,
 * so a run measures what the broker confirms, not how much it buffers. */
#include "bench.h"

#include <criterion/criterion.h>

static struct stp_bench_config cfg_with(uint64_t rate, unsigned window, unsigned receipts)
{
    struct stp_bench_config cfg;
    stp_bench_config_defaults(&cfg);
    cfg.rate = rate, cfg.window = window, cfg.receipts = receipts;
    return cfg;
}

Test(bench_window, receipts_bound_the_unpaced_producer)
{
    struct stp_bench_config cfg = cfg_with(0, 200, 1);
    cr_assert_eq(stp_bench_receipt_room(&cfg, 0, 0), 200, "nothing sent: the whole window");
    cr_assert_eq(stp_bench_receipt_room(&cfg, 150, 0), 50);
    cr_assert_eq(stp_bench_receipt_room(&cfg, 200, 0), 0, "window full: wait for receipts");
    cr_assert_eq(stp_bench_receipt_room(&cfg, 200, 120), 120, "receipts reopen it");
    cr_assert_eq(stp_bench_receipt_room(&cfg, 5000, 5000), 200);
    cr_assert_eq(stp_bench_receipt_room(&cfg, 10, 11), 200, "a stray receipt-id does not wrap");
}

Test(bench_window, no_bound_when_paced_unwindowed_or_without_receipts)
{
    struct stp_bench_config paced = cfg_with(1000, 200, 1);
    cr_assert_eq(stp_bench_receipt_room(&paced, 1000000, 0), UINT64_MAX,
                 "open loop: the schedule decides, never the broker");
    struct stp_bench_config unlimited = cfg_with(0, 0, 1);
    cr_assert_eq(stp_bench_receipt_room(&unlimited, 1000000, 0), UINT64_MAX);
    struct stp_bench_config none = cfg_with(0, 200, 0);
    cr_assert_eq(stp_bench_receipt_room(&none, 1000000, 0), UINT64_MAX);
}

Test(bench_window, a_receipt_every_nth_send_always_fits)
{
    /* --receipts=1000 with --window 200: the first receipt is on SEND 999, so
     * the window grows to 1000 or the producer would stall before it */
    struct stp_bench_config cfg = cfg_with(0, 200, 1000);
    cr_assert_eq(stp_bench_receipt_room(&cfg, 999, 0), 1);
    cr_assert_eq(stp_bench_receipt_room(&cfg, 1000, 0), 0);
    cr_assert_eq(stp_bench_receipt_room(&cfg, 1000, 1000), 1000);
}
