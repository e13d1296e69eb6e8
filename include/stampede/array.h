/*
 * array.h - growing a plain C array by doubling: the one helper behind every
 * "append, realloc when full" in the project.
 *
 * The array stays a plain pointer and a capacity owned by the caller; no
 * locks, no state here.
 */
#ifndef STAMPEDE_ARRAY_H
#define STAMPEDE_ARRAY_H

#include <stddef.h>

/* Make room for `need` elements of `elem` bytes in the array whose pointer is
 * stored at `array_ptr` (a T ** passed as void *) and whose capacity, in
 * elements, is *cap. Grows to max(need, twice the capacity, 8), keeping the
 * elements. 0, or STP_ENOMEM with the array and *cap unchanged. */
int stp_array_reserve(void *array_ptr, size_t *cap, size_t need, size_t elem);

/* STP_ARRAY_RESERVE(q->segs, q->cap, q->nsegs + 1) */
#define STP_ARRAY_RESERVE(arr, cap, need) stp_array_reserve(&(arr), &(cap), (need), sizeof(*(arr)))

#endif
