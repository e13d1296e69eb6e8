/* Unit tests of src/auth/acl.c (issue 11): being written. */
#include "auth/auth.h"

#include <criterion/criterion.h>
