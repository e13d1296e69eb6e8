#include <criterion/criterion.h>

Test(store_journal, placeholder) { cr_assert(1); }
