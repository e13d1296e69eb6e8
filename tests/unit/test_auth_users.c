/* Unit tests of src/auth/users.c (issue 11): being written. */
#include "auth/auth.h"

#include <criterion/criterion.h>
