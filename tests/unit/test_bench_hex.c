/* Unit tests of the fixed-width hex fields that carry sequence numbers and
 * intended send times (untrusted on the way back from the broker). */
#include "bench.h"

#include "stampede/error.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

Test(bench_hex, round_trip)
{
    char buf[17] = {0};
    uint64_t values[] = {0,
                         1,
                         0xf,
                         0x10,
                         0xabcdef,
                         0x0123456789abcdefULL,
                         UINT64_MAX,
                         0x8000000000000000ULL,
                         0x00000000ffffffffULL};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint64_t back = 1;
        stp_bench_hex(buf, values[i], 16);
        cr_assert_eq(stp_bench_unhex(buf, 16, &back), 0, "%s", buf);
        cr_assert_eq(back, values[i], "%s", buf);
    }
    srand(11);
    for (int i = 0; i < 100000; i++) {
        uint64_t v = ((uint64_t)rand() << 40) ^ ((uint64_t)rand() << 20) ^ (uint64_t)rand(), back;
        stp_bench_hex(buf, v & 0xffffffff, 8);
        cr_assert_eq(stp_bench_unhex(buf, 8, &back), 0);
        cr_assert_eq(back, v & 0xffffffff);
        stp_bench_hex(buf, v, 16);
        cr_assert_eq(stp_bench_unhex(buf, 16, &back), 0);
        cr_assert_eq(back, v);
    }
}

Test(bench_hex, known_text)
{
    uint64_t v;
    cr_assert_eq(stp_bench_unhex("00000000deadbeef", 16, &v), 0);
    cr_assert_eq(v, 0xdeadbeefULL);
    cr_assert_eq(stp_bench_unhex("9a0f1b2c", 8, &v), 0);
    cr_assert_eq(v, 0x9a0f1b2cULL);
}

/* Every byte that is not [0-9a-f], at every position, is refused. */
Test(bench_hex, rejects_every_other_byte)
{
    char buf[16];
    for (int pos = 0; pos < 16; pos++) {
        for (int b = 0; b < 256; b++) {
            bool ok = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f');
            memset(buf, '7', sizeof(buf));
            buf[pos] = (char)b;
            uint64_t v = 0;
            int rc = stp_bench_unhex(buf, 16, &v);
            cr_assert_eq(rc, ok ? 0 : STP_EINVAL, "byte 0x%02x at %d", b, pos);
        }
    }
}

Test(bench_hex, widths_other_than_8_or_16_are_refused)
{
    uint64_t v;
    cr_assert_eq(stp_bench_unhex("1234", 4, &v), STP_EINVAL);
    cr_assert_eq(stp_bench_unhex("123456789abcdef01234", 20, &v), STP_EINVAL);
}
