/* Unit tests of the growable buffer. */
#include "stampede/buf.h"

#include <criterion/criterion.h>
#include <string.h>

Test(core_buf, append_grows_and_keeps_bytes)
{
    struct stp_buf b = STP_BUF_INIT;
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(stp_buf_append(&b, "abc", 3), 0);
    cr_assert_eq(b.len, 30000);
    cr_assert(b.cap >= b.len);
    for (size_t i = 0; i < b.len; i += 3)
        cr_assert_eq(memcmp(b.data + i, "abc", 3), 0);
    stp_buf_free(&b);
    cr_assert_null(b.data);
}

Test(core_buf, u64_decimal)
{
    struct stp_buf b = STP_BUF_INIT;
    stp_buf_append_u64(&b, 0);
    stp_buf_append_str(&b, ",");
    stp_buf_append_u64(&b, 18446744073709551615ULL);
    cr_assert_eq(b.len, strlen("0,18446744073709551615"));
    cr_assert_eq(memcmp(b.data, "0,18446744073709551615", b.len), 0);
    stp_buf_free(&b);
}

Test(core_buf, consume_moves_rest_to_front)
{
    struct stp_buf b = STP_BUF_INIT;
    stp_buf_append_str(&b, "hello world");
    stp_buf_consume(&b, 6);
    cr_assert_eq(b.len, 5);
    cr_assert_eq(memcmp(b.data, "world", 5), 0);
    stp_buf_consume(&b, 99);
    cr_assert_eq(b.len, 0);
    stp_buf_free(&b);
}
