/* Placeholder: filled by issue 13's work on this area. */
#include <criterion/criterion.h>

Test(placeholder, empty) { cr_assert(1); }
