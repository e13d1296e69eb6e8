/* 19_crash - being written (issue 12). */
#include "harness.h"

#include <criterion/criterion.h>

TestSuite(crash, .init = h_init, .fini = h_fini);

Test(crash, placeholder)
{
    cr_assert(1);
}
