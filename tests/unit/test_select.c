#include <criterion/criterion.h>

Test(select, placeholder) { cr_assert(1); }
