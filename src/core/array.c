/*
 * array.c - growing arrays by doubling (contract in include/stampede/array.h).
 */
#include "stampede/array.h"

#include "stampede/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int stp_array_reserve(void *array_ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap > SIZE_MAX / 2 ? SIZE_MAX : *cap * 2;
    if (ncap < need)
        ncap = need;
    if (ncap < 8)
        ncap = 8;
    if (ncap > SIZE_MAX / elem)
        return STP_ENOMEM;
    /* The caller's pointer is read and written through memcpy: it may be
     * any object pointer type. */
    void *p;
    memcpy(&p, array_ptr, sizeof(p));
    p = realloc(p, ncap * elem);
    if (!p)
        return STP_ENOMEM;
    memcpy(array_ptr, &p, sizeof(p));
    *cap = ncap;
    return 0;
}
