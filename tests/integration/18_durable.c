/* 18_durable - being written (issue 12). */
#include "harness.h"

#include <criterion/criterion.h>

TestSuite(durable, .init = h_init, .fini = h_fini);

Test(durable, placeholder)
{
    cr_assert(1);
}
