/* Unit tests of the error table. */
#include "stampede/error.h"

#include <criterion/criterion.h>
#include <string.h>
#include <uv.h>

Test(core_error, every_code_has_distinct_text)
{
    for (int e = STP__EFIRST + 1; e < STP__ELAST; e++) {
        cr_assert(e < 0);
        cr_assert_str_neq(stp_strerror(e), "unknown error");
        for (int f = e + 1; f < STP__ELAST; f++)
            cr_assert_str_neq(stp_strerror(e), stp_strerror(f));
    }
    cr_assert_str_eq(stp_strerror(0), "success");
    cr_assert_str_eq(stp_strerror(12345), "unknown error");
}

Test(core_error, uv_codes_are_translated)
{
    cr_assert_eq(stp_err_from_uv(UV_EOF), STP_ECLOSED);
    cr_assert_eq(stp_err_from_uv(UV_ECONNRESET), STP_ECLOSED);
    cr_assert_eq(stp_err_from_uv(UV_ENOMEM), STP_ENOMEM);
    cr_assert_eq(stp_err_from_uv(UV_EACCES), STP_EIO);
}
