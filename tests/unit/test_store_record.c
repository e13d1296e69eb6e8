#include <criterion/criterion.h>

Test(store_record, placeholder) { cr_assert(1); }
